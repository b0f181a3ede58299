#!/usr/bin/env bash
# tests/deps.sh: make sure the build and test dependencies are installed
# (Debian 12). As root it installs what is missing with apt-get; as
# another user it says what to install.
set -eu
pkgs="build-essential pkg-config libesmtp-dev libssl-dev libssh2-1-dev
libcmocka-dev python3 valgrind openssl git git-email openssh-server
openssh-client"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	[ "$(id -u)" -eq 0 ] && "$(dirname "$0")/tools.sh"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "postie needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
"$(dirname "$0")/tools.sh"
