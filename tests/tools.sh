#!/usr/bin/env bash
# tests/tools.sh: the test tools that are not plain packages: Postfix's
# smtp-sink and smtp-source, unpacked from the postfix .deb (installing
# postfix would start a system MTA). As root; idempotent.
set -eu
dir=${POSTIE_POSTFIX_DIR:-/var/tmp/postie-test-tools/postfix}
[ -x "$dir/usr/sbin/smtp-sink" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download postfix >/dev/null)
mkdir -p "$dir"
dpkg -x "$tmp"/postfix_*.deb "$dir"
echo "unpacked smtp-sink into $dir"
