# pkg.sh: installing and unpacking the peers, sourced by enqueue.sh and
# flush.sh (which define die, note, LOG before sourcing it).
# shellcheck shell=bash

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

