#!/usr/bin/env bash
# flush.sh -- how fast is a queue of N messages flushed to a local server?
#
# Usage: tests/bench/flush.sh POSTIE_BIN|none [N]
#
# Starts Postfix's smtp-sink on a free 127.0.0.1 port, then for each tool
# times how long it takes to hand N queued 4 KiB messages to it:
#   smtp-source  -d -s 1 -m N -l 4096 (one reused connection, no disk: the
#                floor)
#   postie       postie deliver -C CONF
#   dma          dma -D -q          (forks one process per message)
#   nullmailer   nullmailer-send    (pausetime 0: one pass, then exit)
#   msmtp        msmtp-runqueue.sh  (one msmtp per message)
#   esmtp        esmtp-wrapper as "deliver" (one esmtp per message)
# Every queue is filled first (untimed; peers queue-only exactly as in
# enqueue.sh), then each flush runs alone under reaper.c, which times it
# until the last process it started has exited.  Afterwards every queue
# must be empty and smtp-sink must have counted exactly N more messages.
# Prints a table and postie's rate against smtp-source's (target >= 0.50)
# and dma's (target >= 10); the targets are reported, not asserted.
#
# Runs as root on Debian 12; installs what is missing as enqueue.sh does,
# and unpacks smtp-sink with tests/tools.sh.  See README.md.
#
# Environment knobs:
#   BENCH_TIMEOUT=300   seconds allowed to each flush (its whole tree)
#   BENCH_ENQ_TIMEOUT=30  seconds allowed to each enqueue command
#   BENCH_WORKDIR=/var/tmp  where the run's queues go (keep it on a disk)
#   BENCH_KEEP=1        keep the run's directory (queues, configs, logs)
#   BENCH_PEERS="dma nullmailer msmtp esmtp"   the peers to run (a subset
#                       for quick repeated runs; smtp-source always runs)
#   BENCH_DUMP=1        smtp-sink also appends every message to a file, and
#                       each tool must have delivered N copies of this
#                       run's marker line (a content check; slows the sink)
#   POSTIE_BENCH_PEERS=/var/tmp/postie-bench-peers   private unpacked peers
#   POSTIE_POSTFIX_DIR=/var/tmp/postie-test-tools/postfix   smtp-sink etc.
set -euo pipefail

PROG=${0##*/}
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $PROG POSTIE_BIN|none [N]" >&2
	exit 2
fi
POSTIE_ARG=$1
N=${2:-1000}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$N'"
TIMEOUT=${BENCH_TIMEOUT:-300}
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive integer"
ENQ_TIMEOUT=${BENCH_ENQ_TIMEOUT:-30}
[[ $ENQ_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_ENQ_TIMEOUT must be a positive integer"
DUMP=${BENCH_DUMP:-0}
RUN_PEERS=${BENCH_PEERS-dma nullmailer msmtp esmtp}
for p in $RUN_PEERS; do
	case $p in dma|nullmailer|msmtp|esmtp) ;; *) die "BENCH_PEERS: unknown peer '$p'" ;; esac
done
wants() { case " $RUN_PEERS " in *" $1 "*) return 0 ;; esac; return 1; }
PEERS=${POSTIE_BENCH_PEERS:-/var/tmp/postie-bench-peers}
PF=${POSTIE_POSTFIX_DIR:-/var/tmp/postie-test-tools/postfix}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=tests/bench/pkg.sh
. "$HERE/pkg.sh"
resolve_postie "$POSTIE_ARG"

[ "$(id -u)" = 0 ] || die "run as root: peers are installed with apt-get and dma's private config needs a mount namespace"
command -v cc >/dev/null || die "cc not found"
command -v ss >/dev/null || die "ss (iproute2) not found"

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
LOG=$(mktemp /var/tmp/postie-bench-log.XXXXXX)
W=
SINK_PID=
BG_PID=

cleanup() {
	local rc=$?
	# a flush or enqueue still running (interrupted): reaper kills its tree
	if [ -n "$BG_PID" ]; then
		kill -TERM "$BG_PID" 2>/dev/null || true
		wait "$BG_PID" 2>/dev/null || true
	fi
	if [ -n "$SINK_PID" ]; then
		kill -TERM "$SINK_PID" 2>/dev/null || true
		wait "$SINK_PID" 2>/dev/null || true
	fi
	if [ -z "$W" ]; then
		:
	elif [ "${BENCH_KEEP:-0}" = 1 ]; then
		note "kept $W"
	elif [ $rc -ne 0 ] && [ -d "$W" ]; then
		# keep the logs of a failed run, drop the bulky queues
		rm -rf "$W/postie/queue" "$W/dma/spool" "$W/nullmailer/queue" \
			"$W/home/.msmtpqueue" "$W/home/.esmtp_queue" "$W/sink/dump"
		note "logs of the failed run kept in $W"
	else
		rm -rf "$W"
	fi
	if [ $rc -ne 0 ] && [ -s "$LOG" ]; then note "install log: $LOG"; else rm -f "$LOG"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_bg OUT ERR CMD...: run CMD in the background, stdout to file OUT and
# stderr to file ERR (or to ours when ERR is -), and wait for it, so that a
# signal to this script interrupts the wait and cleanup() can stop CMD.
# (The redirections belong to CMD alone: cleanup() must not inherit them.)
run_bg() {
	local out=$1 err=$2 rc=0
	shift 2
	if [ "$err" = - ]; then
		"$@" >"$out" &
	elif [ "$err" = "$out" ]; then
		"$@" >"$out" 2>&1 &
	else
		"$@" >"$out" 2>"$err" &
	fi
	BG_PID=$!
	wait "$BG_PID" || rc=$?
	BG_PID=
	return $rc
}

# ---------------------------------------------------------------- installs
# (the same as enqueue.sh)

ensure_pkg dma msmtp esmtp liblockfile-bin
unpack_deb nullmailer "$PEERS/nullmailer"

SINK=$PF/usr/sbin/smtp-sink
SOURCE=$PF/usr/sbin/smtp-source
if [ ! -x "$SINK" ] || [ ! -x "$SOURCE" ]; then
	note "unpacking smtp-sink and smtp-source with tests/tools.sh"
	POSTIE_POSTFIX_DIR=$PF timeout 600 "$HERE/../tools.sh" >>"$LOG" 2>&1 ||
		die "tests/tools.sh failed (see $LOG)"
fi
if [ ! -x "$SINK" ] || [ ! -x "$SOURCE" ]; then
	die "smtp-sink/smtp-source missing under $PF"
fi
PF_ENV="LD_LIBRARY_PATH=$PF/usr/lib/postfix"

DMA=/usr/sbin/dma
[ -x "$DMA" ] || die "dma installed but $DMA missing"
[ -f /etc/dma/dma.conf ] || die "/etc/dma/dma.conf missing"
NM_ROOT=$PEERS/nullmailer/root
NM_INJECT=$NM_ROOT/usr/bin/nullmailer-inject
NM_QUEUE=$NM_ROOT/usr/sbin/nullmailer-queue
NM_SEND=$NM_ROOT/usr/sbin/nullmailer-send
NM_SMTP=$NM_ROOT/usr/lib/nullmailer/smtp
for f in "$NM_INJECT" "$NM_QUEUE" "$NM_SEND" "$NM_SMTP"; do
	[ -f "$f" ] || die "nullmailer unpack incomplete in $PEERS/nullmailer: no $f (remove it to unpack again)"
done
command -v msmtp >/dev/null || die "msmtp installed but not in PATH"
MSMTP_DIR=$(dpkg -L msmtp | grep '/msmtp-enqueue\.sh$' | head -n1 || true)
MSMTP_DIR=${MSMTP_DIR%/*}
MSMTP_ENQ=$MSMTP_DIR/msmtp-enqueue.sh
MSMTP_RUNQ=$MSMTP_DIR/msmtp-runqueue.sh
if [ -z "$MSMTP_DIR" ] || [ ! -f "$MSMTP_ENQ" ] || [ ! -f "$MSMTP_RUNQ" ]; then
	die "msmtp-enqueue.sh/msmtp-runqueue.sh not found in package msmtp"
fi
find_esmtp_wrapper
unshare -m --propagation private -- true 2>/dev/null ||
	die "no mount namespaces (unshare -m): dma can only be pointed at the sink through a private /etc/dma/dma.conf, and the system's is never edited"

# ---------------------------------------------------------------- the run

W=$(mktemp -d "${BENCH_WORKDIR:-/var/tmp}/postie-flush.XXXXXX")
chmod 0711 "$W"	# dma drops root for user mail, smtp-sink runs as nobody
TOKEN=$(basename "$W")

# A private copy of postie: the same binary fills and flushes the queue,
# even if build/ is rebuilt meanwhile.
if [ -n "$POSTIE" ]; then
	mkdir -p "$W/bin"
	cp "$POSTIE" "$W/bin/postie" || die "cannot copy $POSTIE"
	POSTIE=$W/bin/postie
fi

build_helper reaper
build_helper runner

# The message: exactly 4096 bytes, with a marker line (pkg.sh).
make_message "postie flush benchmark"

# ---------------------------------------------------------------- the sink

# smtp-sink -c writes "sess=S quit=Q mesg=M" records, separated by CR, each
# time a message ends ("."), a QUIT is executed or a session ends; M counts
# messages received since it started.  sink_counts prints "S M" (sessions
# ended, messages) of the last complete record.
mkdir -p "$W/sink"
chown nobody "$W/sink"
sink_counts() {
	awk -v RS='\r' '/^sess=[0-9]+ quit=[0-9]+ mesg=[0-9]+$/ { r = $0 }
		END {
			if (r == "") { print "0 0"; exit }
			split(r, f, /[ =]/); print f[2], f[6]
		}' "$W/sink/out"
}

SINK_ARGS=(-c -u nobody)
[ "$DUMP" = 1 ] && SINK_ARGS+=(-D "$W/sink/dump")
PORT=
for _ in $(seq 1 20); do
	p=$((20000 + RANDOM % 40000))
	[ -z "$(ss -Htln "sport = :$p")" ] || continue
	env "$PF_ENV" "$SINK" "${SINK_ARGS[@]}" "127.0.0.1:$p" 1000 \
		>"$W/sink/out" 2>>"$W/sink/err" </dev/null &
	SINK_PID=$!
	for _w in $(seq 1 100); do
		kill -0 "$SINK_PID" 2>/dev/null || break
		[ -z "$(ss -Htln "src 127.0.0.1:$p")" ] || { PORT=$p; break; }
		sleep 0.05
	done
	[ -n "$PORT" ] && break
	kill "$SINK_PID" 2>/dev/null || true
	wait "$SINK_PID" 2>/dev/null || true
	SINK_PID=
done
[ -n "$PORT" ] || die "could not start smtp-sink on a free 127.0.0.1 port (see $W/sink/err)"

# ---------------------------------------------------------------- configs

mkdir -p "$W/home"

# postie: the documented config, plus "bounce none" so that nothing can be
# written outside the run's directory; HOME is the run's too.
if [ -n "$POSTIE" ]; then
	mkdir -p "$W/postie"
	cat >"$W/postie/config" <<-EOF
	queue $W/postie/queue
	log $W/postie/postie.log
	bounce none
	identity bench
	  default
	  host 127.0.0.1
	  port $PORT
	  tls none
	EOF
fi

# dma reads only the compiled-in /etc/dma/dma.conf: in a private mount
# namespace a config of our own is bind-mounted over it (as enqueue.sh
# does).  DEFER (with -bq) keeps it to queueing; -q runs the queue
# whatever DEFER says.  No STARTTLS/SECURETRANSFER: plain SMTP.
mkdir -p "$W/dma"
cat >"$W/dma/dma.conf" <<EOF
SMARTHOST 127.0.0.1
PORT $PORT
SPOOLDIR $W/dma/spool
MAILNAME bench.example.org
DEFER
EOF
chmod 0644 "$W/dma/dma.conf"
install -d -o root -g mail -m 2770 "$W/dma/spool"
DMA_SPOOL=$W/dma/spool
# shellcheck disable=SC2016 # $0 and $@ belong to the inner sh
NS=(unshare -m --propagation private --
	/bin/sh -c 'mount --bind "$0" /etc/dma/dma.conf && exec "$@"' "$W/dma/dma.conf")

# nullmailer: NULLMAILER_TEST_PREFIX=P (ignored by setuid programs, hence
# copies without the bit) makes its programs use P/conf, P/queue,
# P/protocols and P/sbin.  pausetime 0 is nullmailer-send's one-shot mode:
# one pass over the queue, then exit.
NMP=$W/nullmailer
mkdir -p "$NMP/sbin" "$NMP/conf" "$NMP/protocols" "$NMP/queue/queue" "$NMP/queue/tmp" "$NMP/queue/failed"
install -m 0755 "$NM_QUEUE" "$NMP/sbin/nullmailer-queue"
install -m 0755 "$NM_SMTP" "$NMP/protocols/smtp"
mkfifo "$NMP/queue/trigger"
echo bench.example.org >"$NMP/mailname"
echo bench.example.org >"$NMP/conf/defaultdomain"
echo bench.example.org >"$NMP/conf/defaulthost"
echo "127.0.0.1 smtp --port=$PORT" >"$NMP/conf/remotes"
echo 0 >"$NMP/conf/pausetime"
echo 60 >"$NMP/conf/sendtimeout"

# msmtp: msmtp-enqueue.sh / msmtp-runqueue.sh use $HOME/.msmtpqueue;
# runqueue passes its arguments on to msmtp, so the rc file is named
# explicitly (and is also $HOME/.msmtprc).
umask_old=$(umask)
umask 077
cat >"$W/home/.msmtprc" <<EOF
defaults
auth off
tls off
account bench
host 127.0.0.1
port $PORT
from $FROM
account default : bench
EOF
# esmtp reads ~/.esmtprc when it exists, and then not /etc/esmtprc
cat >"$W/home/.esmtprc" <<EOF
hostname=127.0.0.1:$PORT
starttls=disabled
EOF
umask "$umask_old"

# esmtp-wrapper, called as "sendmail", queues and starts a background
# flush 5 s later: the queueing copy has that line removed (as in
# enqueue.sh).  Called as "deliver" it runs the queue in the foreground:
# that copy is the unmodified wrapper.
mkdir -p "$W/esmtp"
grep -q '^[[:space:]]*deliver_queue "background" &[[:space:]]*$' "$ESMTP_WRAPPER" ||
	die "esmtp-wrapper: background flush line not found; cannot make it queue-only"
sed -e 's/^\([[:space:]]*\)deliver_queue "background" &[[:space:]]*$/\1: # queue only (postie bench): no background flush/' \
	"$ESMTP_WRAPPER" >"$W/esmtp/sendmail"
chmod 0755 "$W/esmtp/sendmail"
! grep -q 'deliver_queue "background"' "$W/esmtp/sendmail" || die "esmtp-wrapper patch failed"
grep -q '^[[:space:]]*deliver)' "$ESMTP_WRAPPER" || die "esmtp-wrapper has no deliver mode"
install -m 0755 "$ESMTP_WRAPPER" "$W/esmtp/deliver"

MSMTP_CMD=("$MSMTP_ENQ")
[ -x "$MSMTP_ENQ" ] || MSMTP_CMD=(/bin/sh "$MSMTP_ENQ")

# ---------------------------------------------------------------- fill

SPECS=()
TOOLS=(smtp-source)
if [ -n "$POSTIE" ]; then
	SPECS+=(-- postie "HOME=$W/home" "$POSTIE" sendmail -C "$W/postie/config" -odq -i -f "$FROM" "$RCPT")
	TOOLS+=(postie)
fi
wants dma && SPECS+=(-- dma "$DMA" -bq -i -f "$FROM" "$RCPT") && TOOLS+=(dma)
wants nullmailer && SPECS+=(-- nullmailer "NULLMAILER_TEST_PREFIX=$NMP" "$NM_INJECT" -f "$FROM" "$RCPT") && TOOLS+=(nullmailer)
wants msmtp && SPECS+=(-- msmtp "HOME=$W/home" "${MSMTP_CMD[@]}" -i -f "$FROM" "$RCPT") && TOOLS+=(msmtp)
wants esmtp && SPECS+=(-- esmtp "HOME=$W/home" "$W/esmtp/sendmail" -i -f "$FROM" "$RCPT") && TOOLS+=(esmtp)

note "N=$N, ${#TOOLS[@]} tools, smtp-sink on 127.0.0.1:$PORT, workdir $W ($(df -T "$W" | awk 'NR==2 {print $2}'))"
note "filling the queues (untimed)"
run_bg "$W/enqueue-results" - "${NS[@]}" "$W/runner" -i "$MSG" -n "$N" -w 0 -t "$ENQ_TIMEOUT" "${SPECS[@]}" ||
	die "filling the queues failed: a spool command failed (see above)"

# count_marked DIR [find args...]: files under DIR holding our marker
count_marked() {
	local dir=$1
	shift
	[ -d "$dir" ] || { echo 0; return; }
	find "$dir" -type f "$@" -exec grep -lF -- "$MARKER" {} + 2>/dev/null | wc -l
}

# queued TOOL: how many of our messages TOOL's queue holds
queued() {
	case $1 in
	postie) count_marked "$W/postie/queue" -not -path "$W/postie/queue/tmp/*" ;;
	dma) count_marked "$DMA_SPOOL" -name 'M*' ;;
	nullmailer) count_marked "$NMP/queue/queue" ;;
	msmtp) count_marked "$W/home/.msmtpqueue" -name '*.mail' ;;
	esmtp) count_marked "$W/home/.esmtp_queue" -name mail ;;
	esac
}

# leftovers TOOL: any file left in TOOL's queue after a flush (a count);
# dma -q leaves an empty "flush" file in its spool, which is no mail
leftovers() {
	case $1 in
	postie) find "$W/postie/queue" -type f | grep -c . || true ;;
	dma) find "$DMA_SPOOL" -type f -not -name flush | grep -c . || true ;;
	nullmailer) find "$NMP/queue/queue" "$NMP/queue/tmp" "$NMP/queue/failed" -type f | grep -c . || true ;;
	msmtp) find "$W/home/.msmtpqueue" -type f | grep -c . || true ;;
	esmtp) find "$W/home/.esmtp_queue" -mindepth 1 | grep -c . || true ;;
	esac
}

for t in "${TOOLS[@]}"; do
	[ "$t" = smtp-source ] && continue
	got=$(queued "$t")
	[ "$got" -eq "$N" ] || die "$t: expected $N queued messages, found $got"
done
! wants esmtp || [ -z "$(find "$W/home/.esmtp_queue" -name lock)" ] || die "esmtp: lock files left in the queue"
read -r _ m < <(sink_counts)
[ "$m" -eq 0 ] || die "smtp-sink received $m messages while the queues were filled: some tool did not only queue"

# ---------------------------------------------------------------- flush

dump_marks() {
	if [ "$DUMP" = 1 ]; then
		grep -cF -- "$MARKER" "$W/sink/dump" 2>/dev/null || true
	else
		echo 0
	fi
}

# flush TOOL: run TOOL's flush under reaper; append "TOOL NS SESSIONS REAPED" to
# results, or die.
: >"$W/results"
flush() {
	local t=$1 s0 m0 s1 m1 k0 k1 ns reaped rc=0 want left
	local cmd=()
	case $t in
	smtp-source)
		cmd=("$W/reaper" -t "$TIMEOUT" -o "$W/reaper.$t" -- "$PF_ENV"
			"$SOURCE" -d -s 1 -m "$N" -l 4096 -f "$FROM" -t "$RCPT" "127.0.0.1:$PORT") ;;
	postie)
		cmd=("$W/reaper" -t "$TIMEOUT" -o "$W/reaper.$t" -- "HOME=$W/home"
			"$POSTIE" deliver -C "$W/postie/config") ;;
	dma)
		cmd=("${NS[@]}" "$W/reaper" -t "$TIMEOUT" -o "$W/reaper.$t" --
			"$DMA" -D -q) ;;
	nullmailer)
		cmd=("$W/reaper" -t "$TIMEOUT" -o "$W/reaper.$t" --
			"NULLMAILER_TEST_PREFIX=$NMP" "$NM_SEND") ;;
	msmtp)
		cmd=("$W/reaper" -t "$TIMEOUT" -o "$W/reaper.$t" -- "HOME=$W/home"
			/bin/sh "$MSMTP_RUNQ" "--file=$W/home/.msmtprc") ;;
	esmtp)
		cmd=("$W/reaper" -t "$TIMEOUT" -o "$W/reaper.$t" -- "HOME=$W/home"
			"$W/esmtp/deliver") ;;
	esac
	timeout 300 sync || die "sync timed out"
	read -r s0 m0 < <(sink_counts)
	k0=$(dump_marks)
	note "flushing $t"
	run_bg "$W/$t.out" "$W/$t.out" "${cmd[@]}" || rc=$?
	if [ $rc -ne 0 ]; then
		sed -e "s/^/  $t: /" "$W/$t.out" | tail -n 20 >&2
		die "$t: the flush failed (exit $rc; output in $W/$t.out)"
	fi
	# (reaper exits non-zero when any process it reaped failed)
	read -r ns reaped _ <"$W/reaper.$t" || die "$t: no result from reaper"
	# every process of the flush is gone, so everything was sent; give
	# smtp-sink a moment to account for the last of it
	want=$((m0 + N))
	for _ in $(seq 1 200); do
		read -r s1 m1 < <(sink_counts)
		[ "$m1" -ge "$want" ] && break
		sleep 0.05
	done
	sleep 0.2
	read -r s1 m1 < <(sink_counts)
	[ "$m1" -eq "$want" ] ||
		die "$t: smtp-sink received $((m1 - m0)) messages, expected $N (output in $W/$t.out)"
	if [ "$t" != smtp-source ]; then
		left=$(leftovers "$t")
		[ "$left" -eq 0 ] || die "$t: $left files left in its queue after the flush (output in $W/$t.out)"
	fi
	if [ "$DUMP" = 1 ] && [ "$t" != smtp-source ]; then
		k1=$(dump_marks)
		[ $((k1 - k0)) -eq "$N" ] ||
			die "$t: smtp-sink's dump holds $((k1 - k0)) messages with this run's marker, expected $N"
	fi
	echo "$t $ns $((s1 - s0)) $reaped" >>"$W/results"
}

for t in "${TOOLS[@]}"; do
	flush "$t"
done

# ---------------------------------------------------------------- report

awk -v n="$N" -v have_postie="${POSTIE:+1}" '
{ name[NR] = $1; ns[NR] = $2; sess[NR] = $3; rate[NR] = n / ($2 / 1e9)
  if ($1 == "smtp-source") src = rate[NR]
  if ($1 == "postie") pr = rate[NR]
  if ($1 == "dma") dr = rate[NR] }
END {
	printf "\n%-12s %9s %10s %15s %9s\n", "tool", "seconds", "msgs/s", "vs smtp-source", "sessions"
	for (i = 1; i <= NR; i++)
		printf "%-12s %9.3f %10.1f %15.3f %9d\n", name[i], ns[i] / 1e9,
			rate[i], rate[i] / src, sess[i]
	printf "\n"
	if (have_postie) {
		printf "postie/smtp-source: %.2f (target >= 0.50)\n", pr / src
		if (dr > 0)
			printf "postie/dma: %.1f (target >= 10)\n", pr / dr
		else
			printf "postie/dma: n/a (dma not run; target >= 10)\n"
	} else {
		printf "postie/smtp-source: n/a (postie not run; target >= 0.50)\n"
		printf "postie/dma: n/a (postie not run; target >= 10)\n"
	}
}' "$W/results"
