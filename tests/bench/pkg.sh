# pkg.sh: what enqueue.sh and flush.sh share: the postie binary, installing
# and unpacking the peers, building the helpers, the benchmark message.
# Sourced by both (which define die, note, LOG, HERE, W and TOKEN before
# calling these).
# shellcheck shell=bash
# shellcheck disable=SC2034 # POSTIE, FROM, RCPT...: for the callers

apt_update_once() {
	[ "$APT_UPDATED" = 1 ] && return 0
	note "apt-get update"
	timeout 600 apt-get update >>"$LOG" 2>&1 || die "apt-get update failed (see $LOG)"
	APT_UPDATED=1
}

# True when the package has a candidate version in apt's lists.
apt_has() {
	local c
	c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[ -n "$c" ] && [ "$c" != "(none)" ]
}

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_pkg PKG...: apt-get install whatever is not installed yet, but
# never anything that would make apt remove a package.
ensure_pkg() {
	local missing=() p removes
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	for p in "${missing[@]}"; do
		apt_has "$p" || apt_update_once
		apt_has "$p" || die "package $p not found by apt-cache policy"
	done
	removes=$(timeout 120 apt-get -s install -y --no-install-recommends "${missing[@]}" 2>>"$LOG" |
		awk '/^Remv/ {print $2}' | tr '\n' ' ')
	[ -z "$removes" ] ||
		die "installing ${missing[*]} would remove: $removes-- refusing (install it yourself if you mean it)"
	note "installing ${missing[*]}"
	timeout 900 apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 ||
		die "apt-get install ${missing[*]} failed (see $LOG)"
}

# unpack_deb PKG DEST: apt-get download + dpkg -x into DEST (once), and
# install the package's library dependencies (first alternatives).
unpack_deb() {
	local pkg=$1 dest=$2 deb deps d
	[ -f "$dest/.unpacked" ] && return 0
	apt_has "$pkg" || apt_update_once
	apt_has "$pkg" || die "package $pkg not found by apt-cache policy"
	rm -rf "$dest"
	mkdir -p "$dest/deb"
	note "downloading and unpacking $pkg into $dest"
	(cd "$dest/deb" && timeout 600 apt-get download "$pkg" >>"$LOG" 2>&1) ||
		die "apt-get download $pkg failed (see $LOG)"
	deb=$(ls "$dest"/deb/*.deb)
	dpkg-deb -x "$deb" "$dest/root" || die "dpkg-deb -x $deb failed"
	deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' |
		sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | grep -v '^$' || true)
	for d in $deps; do
		case $d in debconf*) continue ;; esac
		ensure_pkg "$d"
	done
	touch "$dest/.unpacked"
}

# resolve_postie ARG: POSTIE is ARG's absolute path, or empty for "none".
resolve_postie() {
	POSTIE=
	[ "$1" = none ] && return 0
	if [ ! -f "$1" ] || [ ! -x "$1" ]; then
		die "postie binary not found or not executable: $1"
	fi
	POSTIE=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
}

# find_esmtp_wrapper: ESMTP_WRAPPER from the installed esmtp package, or
# from its .deb when dpkg's path-exclude left the docs out.
find_esmtp_wrapper() {
	ESMTP_WRAPPER=$(dpkg -L esmtp | grep '/esmtp-wrapper$' | head -n1 || true)
	if [ -z "$ESMTP_WRAPPER" ] || [ ! -f "$ESMTP_WRAPPER" ]; then
		unpack_deb esmtp "$PEERS/esmtp"
		ESMTP_WRAPPER=$(find "$PEERS/esmtp/root" -name esmtp-wrapper -type f | head -n1)
		[ -n "$ESMTP_WRAPPER" ] || die "esmtp-wrapper not found in package esmtp"
	fi
}

# build_helper NAME: $HERE/NAME.c into $W/NAME.
build_helper() {
	timeout 120 cc -std=c17 -O2 -Wall -Wextra -Werror -o "$W/$1" "$HERE/$1.c" ||
		die "cannot build $1.c"
}

# make_message SUBJECT: MSG=$W/message, exactly 4096 bytes, with a marker
# line (MARKER) that lets us count what each tool queued or delivered,
# whatever its file layout.
make_message() {
	local line pad
	MARKER="postie-bench-marker $TOKEN"
	MSG=$W/message
	{
		printf 'From: Alice <alice@example.org>\n'
		printf 'To: Bob <bob@example.com>\n'
		printf 'Subject: %s\n' "$1"
		printf 'Date: Mon, 02 Jan 2023 10:00:00 +0000\n'
		printf 'Message-ID: <%s@example.org>\n' "$TOKEN"
		printf 'X-Postie-Bench: %s\n' "$TOKEN"
		printf '\n'
		printf '%s\n' "$MARKER"
	} >"$MSG"
	line='The quick brown fox jumps over the lazy dog, again and again.'
	while [ $(( $(stat -c %s "$MSG") + ${#line} + 1 )) -le 4096 ]; do
		printf '%s\n' "$line" >>"$MSG"
	done
	pad=$(( 4096 - $(stat -c %s "$MSG") ))
	if [ $pad -gt 0 ]; then
		head -c $((pad - 1)) /dev/zero | tr '\0' '.' >>"$MSG"
		printf '\n' >>"$MSG"
	fi
	[ "$(stat -c %s "$MSG")" = 4096 ] || die "message is not 4096 bytes"
	FROM=alice@example.org
	RCPT=bob@example.com
}
