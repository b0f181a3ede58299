#!/usr/bin/env bash
# tests/demo.sh POSTIE: postie's main job end to end, in a scratch home:
# mutt hands a message to sendmail, it is durably queued, mailq shows it.
set -eu
postie=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
demo=$(mktemp -d /tmp/postie-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
export HOME=$demo USER=alice
unset POSTIE_CONFIG XDG_CONFIG_HOME XDG_STATE_HOME
mkdir -p "$demo/bin" "$demo/.config/postie"
for c in sendmail mailq; do ln -s "$postie" "$demo/bin/$c"; done
cat > "$demo/.config/postie/config" <<CONF

identity work
  from       *@corp.example.com
  host       smtp.corp.example.com
  user       alice
  password-command "/usr/bin/pass show corp/smtp"
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

say "a cron job without a From: and without -f: sendmail -FCronDaemon -i alice"
printf 'Subject: backup done\n\nall good\n' |
	"$demo/bin/sendmail" -v -FCronDaemon -i alice

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
