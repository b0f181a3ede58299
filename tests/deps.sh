#!/usr/bin/env bash
# tests/deps.sh: make sure the build and test dependencies are installed
# (Debian 12): the packages listed in tests/packages, then the tools that
# tests/tools.sh unpacks. As root it installs what is missing with
# apt-get; as another user it says what to install.
set -eu
here=$(dirname "$0")
pkgs=$(sed -e 's/#.*//' "$here/packages")
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "postie needs these Debian packages:$missing" >&2
		echo "install them with: sudo apt-get install --no-install-recommends$missing" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
fi
if [ "$(id -u)" -eq 0 ]; then
	"$here/tools.sh"
fi
