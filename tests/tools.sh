#!/usr/bin/env bash
# tests/tools.sh: the test tools that are not plain packages: Postfix,
# unpacked from the postfix .deb (installing postfix would start a system
# MTA): smtp-sink for the memory test, and the daemons that
# tests/integration/postfix.py runs as a private instance, which need the
# user postfix and the group postdrop. As root; idempotent.
set -eu
dir=${POSTIE_POSTFIX_DIR:-/var/tmp/postie-test-tools/postfix}
if [ ! -x "$dir/usr/lib/postfix/sbin/master" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download postfix >/dev/null)
	mkdir -p "$dir"
	dpkg -x "$tmp"/postfix_*.deb "$dir"
	echo "unpacked postfix into $dir"
fi
# what the postfix package's postinst would make: a system group and a
# system user without a login or a home of its own
getent group postdrop >/dev/null || groupadd --system postdrop
getent passwd postfix >/dev/null ||
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin postfix
