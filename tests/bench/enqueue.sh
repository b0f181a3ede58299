#!/usr/bin/env bash
# enqueue.sh -- how long does one durable enqueue take?
#
# Usage: tests/bench/enqueue.sh POSTIE_BIN|none [N]
#
# Times N spools of one 4 KiB message with each of: floor (floor.c, the
# bare Maildir recipe), postie, dma, nullmailer-inject, msmtp-enqueue.sh
# and esmtp-wrapper, one process per message, interleaved round-robin by
# runner.c.  Every peer is set up to queue only (nothing is ever sent) and
# to queue into a private directory of this run.  Prints a table and the
# postie/floor ratio (target <= 1.30; reported, not asserted).
#
# Runs as root on Debian 12: installs what is missing with apt-get (dma,
# msmtp, esmtp, liblockfile-bin) and unpacks nullmailer privately (it
# conflicts with dma).  A second run installs nothing.  See README.md.
#
# Environment knobs:
#   BENCH_WARMUP=2      untimed rounds before the N timed ones
#   BENCH_TIMEOUT=30    seconds allowed to each spawned spool process
#   BENCH_WORKDIR=/var/tmp   where the run's queues go (keep it on a disk,
#                       not tmpfs: fsync on tmpfs is free)
#   BENCH_KEEP=1        keep the run's directory (queues, config, logs)
#   POSTIE_BENCH_PEERS=/var/tmp/postie-bench-peers   private unpacked peers
set -euo pipefail

PROG=${0##*/}
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $PROG POSTIE_BIN|none [N]" >&2
	exit 2
fi
POSTIE_ARG=$1
N=${2:-100}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$N'"
WARMUP=${BENCH_WARMUP:-2}
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer"
TIMEOUT=${BENCH_TIMEOUT:-30}
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive integer"
PEERS=${POSTIE_BENCH_PEERS:-/var/tmp/postie-bench-peers}
EXPECT=$((N + WARMUP))

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=tests/bench/pkg.sh
. "$HERE/pkg.sh"
resolve_postie "$POSTIE_ARG"

[ "$(id -u)" = 0 ] || die "run as root: peers are installed with apt-get and dma's private spool needs a mount namespace"
command -v cc >/dev/null || die "cc not found"

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
LOG=$(mktemp /var/tmp/postie-bench-log.XXXXXX)
W=
DMA_MODE=
TOKEN=

cleanup() {
	local rc=$?
	# fallback mode only: take our test mail back out of dma's spool
	if [ "$DMA_MODE" = system ] && [ -d /var/spool/dma ]; then
		local m
		for m in /var/spool/dma/M*; do
			[ -f "$m" ] || continue
			if grep -qF "X-Postie-Bench: $TOKEN" "$m"; then
				rm -f "$m" "/var/spool/dma/Q${m#/var/spool/dma/M}"
			fi
		done
	fi
	if [ -z "$W" ]; then
		:
	elif [ "${BENCH_KEEP:-0}" = 1 ]; then
		note "kept $W"
	else
		rm -rf "$W"
	fi
	if [ $rc -ne 0 ] && [ -s "$LOG" ]; then note "install log: $LOG"; else rm -f "$LOG"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- installs

ensure_pkg dma msmtp esmtp liblockfile-bin
unpack_deb nullmailer "$PEERS/nullmailer"

DMA=/usr/sbin/dma
[ -x "$DMA" ] || die "dma installed but $DMA missing"
[ -f /etc/dma/dma.conf ] || die "/etc/dma/dma.conf missing"
NM_INJECT=$PEERS/nullmailer/root/usr/bin/nullmailer-inject
NM_QUEUE=$PEERS/nullmailer/root/usr/sbin/nullmailer-queue
if [ ! -x "$NM_INJECT" ] || [ ! -f "$NM_QUEUE" ]; then
	die "nullmailer unpack incomplete in $PEERS/nullmailer (remove it to unpack again)"
fi
MSMTP_ENQ=$(dpkg -L msmtp | grep '/msmtp-enqueue\.sh$' | head -n1 || true)
if [ -z "$MSMTP_ENQ" ] || [ ! -f "$MSMTP_ENQ" ]; then
	die "msmtp-enqueue.sh not found in package msmtp"
fi
find_esmtp_wrapper

# ---------------------------------------------------------------- the run

W=$(mktemp -d "${BENCH_WORKDIR:-/var/tmp}/postie-bench.XXXXXX")
chmod 0711 "$W"	# dma drops root for user mail: it must reach its spool
DMA_SPOOL=
TOKEN=$(basename "$W")


build_helper floor
build_helper runner

# The message: exactly 4096 bytes, with a marker line (pkg.sh).
make_message "postie enqueue benchmark"

# floor
mkdir -p "$W/floor-q/tmp" "$W/floor-q/new" "$W/floor-q/cur"

# postie: its own config file; it creates its queue itself
if [ -n "$POSTIE" ]; then
	mkdir -p "$W/postie"
	printf 'queue %s\n' "$W/postie/queue" >"$W/postie/config"
fi

# dma: queue-only (-bq, and DEFER in the config).  dma reads the compiled-in
# /etc/dma/dma.conf, so in a private mount namespace we bind a config of
# our own over it, with SPOOLDIR pointing into this run; the system's
# config and spool are never touched.  Without namespaces, fall back to the
# system spool and take our messages back out afterwards.
mkdir -p "$W/dma"
printf 'SPOOLDIR %s\nMAILNAME bench.example.org\nDEFER\n' "$W/dma/spool" >"$W/dma/dma.conf"
chmod 0644 "$W/dma/dma.conf"
install -d -o root -g mail -m 2770 "$W/dma/spool"
if unshare -m --propagation private -- true 2>/dev/null; then
	DMA_MODE=private
	DMA_SPOOL=$W/dma/spool
	# shellcheck disable=SC2016 # $0 and $@ belong to the inner sh
	NS=(unshare -m --propagation private --
		/bin/sh -c 'mount --bind "$0" /etc/dma/dma.conf && exec "$@"' "$W/dma/dma.conf")
else
	DMA_MODE=system
	DMA_SPOOL=/var/spool/dma
	NS=()
	note "no mount namespace: dma queues into /var/spool/dma (cleaned up afterwards)"
fi

# nullmailer: NULLMAILER_TEST_PREFIX=P makes nullmailer-inject run
# P/sbin/nullmailer-queue, read its config from P/conf (and P/mailname) and
# queue into P/queue/{tmp,queue}.  Nothing runs nullmailer-send, so it only
# queues.  The prefix is ignored by a setuid binary, so our copy has no
# setuid bit (the package's is setuid mail).
NMP=$W/nullmailer
mkdir -p "$NMP/sbin" "$NMP/conf" "$NMP/queue/queue" "$NMP/queue/tmp" "$NMP/queue/failed"
install -m 0755 "$NM_QUEUE" "$NMP/sbin/nullmailer-queue"
mkfifo "$NMP/queue/trigger"
echo bench.example.org >"$NMP/mailname"
echo bench.example.org >"$NMP/conf/defaultdomain"
echo bench.example.org >"$NMP/conf/defaulthost"

# msmtp-enqueue.sh and esmtp-wrapper queue under $HOME
mkdir -p "$W/home"

# esmtp-wrapper, invoked as "sendmail", queues and then starts a background
# "deliver_queue" that sleeps 5 s and runs esmtp on the queue.  Queue-only:
# a copy with that one line removed.
mkdir -p "$W/esmtp"
grep -q '^[[:space:]]*deliver_queue "background" &[[:space:]]*$' "$ESMTP_WRAPPER" ||
	die "esmtp-wrapper: background flush line not found; cannot make it queue-only"
sed -e 's/^\([[:space:]]*\)deliver_queue "background" &[[:space:]]*$/\1: # queue only (postie bench): no background flush/' \
	"$ESMTP_WRAPPER" >"$W/esmtp/sendmail"
chmod 0755 "$W/esmtp/sendmail"
! grep -q 'deliver_queue "background"' "$W/esmtp/sendmail" || die "esmtp-wrapper patch failed"

MSMTP_CMD=("$MSMTP_ENQ")
[ -x "$MSMTP_ENQ" ] || MSMTP_CMD=(/bin/sh "$MSMTP_ENQ")

SPECS=(-- floor "$W/floor" "$W/floor-q")
TOOLS=(floor)
if [ -n "$POSTIE" ]; then
	SPECS+=(-- postie "$POSTIE" sendmail -C "$W/postie/config" -odq -i -f "$FROM" "$RCPT")
	TOOLS+=(postie)
fi
SPECS+=(-- dma "$DMA" -bq -i -f "$FROM" "$RCPT")
SPECS+=(-- nullmailer "NULLMAILER_TEST_PREFIX=$NMP" "$NM_INJECT" -f "$FROM" "$RCPT")
SPECS+=(-- msmtp "HOME=$W/home" "${MSMTP_CMD[@]}" -i -f "$FROM" "$RCPT")
SPECS+=(-- esmtp "HOME=$W/home" "$W/esmtp/sendmail" -i -f "$FROM" "$RCPT")
TOOLS+=(dma nullmailer msmtp esmtp)

note "N=$N (+$WARMUP warm-up rounds), ${#TOOLS[@]} tools, workdir $W ($(df -T "$W" | awk 'NR==2 {print $2}')), dma mode: $DMA_MODE"
"${NS[@]}" "$W/runner" -i "$MSG" -n "$N" -w "$WARMUP" -t "$TIMEOUT" "${SPECS[@]}" >"$W/results" ||
	die "benchmark aborted: a spool command failed (see above)"

# ---------------------------------------------------------------- verify

# count_marked DIR [find args...]: files under DIR holding our marker
count_marked() {
	local dir=$1
	shift
	find "$dir" -type f "$@" -exec grep -lF -- "$MARKER" {} + 2>/dev/null | wc -l
}

verify() {
	local tool=$1 got=$2
	[ "$got" -eq "$EXPECT" ] ||
		die "$tool: expected $EXPECT queued messages, found $got"
}

verify floor "$(count_marked "$W/floor-q/new")"
[ -z "$(ls -A "$W/floor-q/tmp")" ] || die "floor: files left in tmp/"
if [ -n "$POSTIE" ]; then
	verify postie "$(count_marked "$W/postie/queue" -not -path "$W/postie/queue/tmp/*")"
fi
verify dma "$(count_marked "$DMA_SPOOL" -name 'M*')"
verify nullmailer "$(count_marked "$NMP/queue/queue")"
verify msmtp "$(count_marked "$W/home/.msmtpqueue" -name '*.mail')"
verify esmtp "$(count_marked "$W/home/.esmtp_queue" -name mail)"
[ -z "$(find "$W/home/.esmtp_queue" -name lock)" ] || die "esmtp: lock files left in the queue"

# ---------------------------------------------------------------- report

awk -v n="$N" -v have_postie="${POSTIE:+1}" '
{ name[NR] = $1; total[NR] = $3; med[NR] = $5; if ($1 == "floor") f = $3 }
END {
	printf "\n%-11s %10s %9s %11s %8s\n", "tool", "total ms", "ms/msg", "median ms", "ratio"
	for (i = 1; i <= NR; i++)
		printf "%-11s %10.1f %9.3f %11.3f %8.2f\n", name[i], total[i] / 1e6,
			total[i] / n / 1e6, med[i] / 1e6, total[i] / f
	printf "\n"
	best = ""
	for (i = 1; i <= NR; i++) {
		if (name[i] == "postie")
			p = total[i] / f
		else if (name[i] != "floor" && (best == "" || total[i] < bt)) {
			best = name[i]; bt = total[i]
		}
	}
	if (have_postie)
		printf "postie/floor ratio: %.2f (target <= 1.30)\n", p
	else
		printf "postie/floor ratio: n/a (postie not run; target <= 1.30)\n"
	printf "fastest peer: %s (ratio %.2f)\n", best, bt / f
}' "$W/results"
