#!/usr/bin/env bash
# tests/demo.sh POSTIE: postie's main job end to end, in a scratch home:
# mutt hands a message to sendmail, it is durably queued, mailq shows it,
# deliver sends it to a local SMTP server the demo starts, cron's local
# mail lands in ~/Maildir; then (as root, with OpenSSH's sshd) fetch
# brings mail down from a Maildir on a private sshd.
set -eu
postie=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
demo=$(mktemp -d /tmp/postie-demo.XXXXXX)
here=$(cd "$(dirname "$0")" && pwd)
server_pid=
trap 'rm -rf "$demo"; if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi' EXIT
export HOME=$demo USER=alice
unset POSTIE_CONFIG XDG_CONFIG_HOME XDG_STATE_HOME
mkdir -p "$demo/bin" "$demo/.config/postie"
for c in sendmail mailq deliver; do ln -s "$postie" "$demo/bin/$c"; done

# a local SMTP server standing in for smtp.corp.example.com
/usr/bin/python3 "$here/integration/smtpserver.py" "$demo/port" 1 > "$demo/server.out" &
server_pid=$!
for _ in $(seq 50); do [ -s "$demo/port" ] && break; sleep 0.1; done
port=$(cat "$demo/port")

cat > "$demo/.config/postie/config" <<CONF
batch-delay 1s
identity work
  from       *@corp.example.com
  host       127.0.0.1
  port       $port
  tls        none           # the demo server speaks plain SMTP on loopback
CONF

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "config (~/.config/postie/config)"
cat "$demo/.config/postie/config"

say "mutt sends: sendmail -oem -oi -f alice@corp.example.com -- bob@example.com"
start=$(date +%s%N)
"$demo/bin/sendmail" -v -oem -oi -f alice@corp.example.com -- bob@example.com <<'MSG'
From: Alice <alice@corp.example.com>
To: Bob <bob@example.com>
Bcc: audit@corp.example.com
Subject: Lunch?

Noon at the usual place?
.
(a lone dot is data with -oi)
MSG
end=$(date +%s%N)
echo "sendmail returned 0 after $(( (end - start) / 1000 )) us: the message is fsync'd in the queue"

say "a cron job without a From: and without -f: sendmail -FCronDaemon -i -odq alice"
printf 'Subject: backup done\n\nall good\n' |
	"$demo/bin/sendmail" -v -FCronDaemon -i -odq alice

say "mailq"
"$demo/bin/mailq"

say "mailq --json"
"$demo/bin/mailq" --json

say "the queue on disk (~/.local/state/postie/queue)"
q=$demo/.local/state/postie/queue
ls -l "$q" "$q/msg"
first=$(ls "$q/msg" | head -n 1)
say "msg/$first: the envelope, then the message as stored (Bcc removed, Date and Message-ID added)"
cat "$q/msg/$first"

say "sendmail started a detached deliver that waits batch-delay (1s); waiting for it"
for _ in $(seq 100); do
	grep -q "^== the SMTP server received" "$demo/server.out" 2>/dev/null && break
	sleep 0.1
done
sleep 0.3
cat "$demo/server.out"

say "deliver -v: a queue run by hand (nothing left: the detached run also put cron's local mail into ~/Maildir)"
"$demo/bin/deliver" -v
ls "$demo/Maildir/new"

say "mailq"
"$demo/bin/mailq"

# the receive half: needs sshd (openssh-server) and, for its privilege
# separation directory, root
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
	/usr/bin/python3 "$here/demo_fetch.py" "$postie" "$demo"
else
	say "fetch: skipped (the demo starts a private sshd, which needs root and openssh-server)"
fi
