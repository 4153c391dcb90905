#!/usr/bin/env bash
# test_package.sh BUILD_DIR VERSION - builds the Debian package with
# scripts/package (no unit tests inside the package build: this suite runs
# them; one job, niced, beside the timing-sensitive cluster tests) and
# checks it: its fields (dpkg-deb -I), its files (dpkg-deb -c), its
# maintainer scripts, the unit and the programs inside it, lintian (errors
# fail; scripts/package runs it), and then installs it for real in a
# throwaway overlay of the machine (overlay_install.sh: user, directories,
# a node run as the unit runs it, reinstall, remove, purge).  Skipped (77)
# where debhelper or dpkg-dev is missing.
set -euo pipefail
build=$1
version=$2
src=${INGOT_SOURCE_DIR:?INGOT_SOURCE_DIR not set}
for tool in dpkg-buildpackage dh dpkg-deb; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool not found (scripts/setup installs debhelper and dpkg-dev)"
		exit 77
	fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

start=$(date +%s)
deb=$(nice -n 19 env DEB_BUILD_OPTIONS=parallel=1 "$src/scripts/package" --no-check \
	--out "$tmp/out" 2>"$tmp/package.err") || {
	cat "$tmp/package.err" >&2
	echo "FAIL: scripts/package" >&2
	exit 1
}
echo "scripts/package: $(($(date +%s) - start)) s"
grep -v '^running with root privileges' "$tmp/package.err" || true

# Fields.
arch=$(dpkg --print-architecture)
[ "$(basename "$deb")" = "ingot_${version}_$arch.deb" ] || fail "package file $deb"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = ingot ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), CMake says $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
for dep in adduser libraft2 liblmdb0 libuv1 libssl3 libmsgpackc2 libyaml-0-2 libjansson4 \
	libmicrohttpd12 libgnutls30; do
	grep -q "\b$dep\b" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
dpkg-deb -I "$deb" >"$tmp/info"
grep -q ' postinst ' "$tmp/info" || fail "no postinst"

# Files.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$tmp/files"
for f in /usr/sbin/ingotd /usr/bin/ingotctl /usr/share/man/man8/ingotd.8.gz \
	/usr/share/man/man1/ingotctl.1.gz /usr/share/bash-completion/completions/ingotctl \
	/lib/systemd/system/ingotd.service /usr/lib/sysusers.d/ingot.conf \
	/usr/share/doc/ingot/copyright /usr/share/doc/ingot/README.md \
	/usr/share/doc/ingot/operations.md /usr/share/doc/ingot/cli.md \
	/usr/share/doc/ingot/examples/ingotd.yaml /usr/share/doc/ingot/examples/dev/node1.yaml \
	/usr/share/doc/ingot/examples/local-3/node1.yaml \
	/usr/share/doc/ingot/examples/targets/x86_64-avx2.yaml \
	/usr/share/doc/ingot/examples/kernels/fir/fir.c; do
	grep -qx "$f" "$tmp/files" || fail "not in the package: $f"
done
# No configuration: installing must not make the unit's condition true.
if grep -E '^/etc/ingot/|^/var/lib/ingot' "$tmp/files"; then
	fail "the package ships the files above"
fi

# Contents: the unit, the maintainer scripts, the programs.
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"
unit=$tmp/root/lib/systemd/system/ingotd.service
grep -qx 'ExecStart=/usr/sbin/ingotd --config /etc/ingot/ingotd.yaml' "$unit" || fail "ExecStart"
grep -qx 'ConditionPathExists=/etc/ingot/ingotd.yaml' "$unit" || fail "ConditionPathExists"
grep -q 'adduser --system --group' "$tmp/control/postinst" || fail "postinst creates no user"
grep -q "deb-systemd-helper enable 'ingotd.service'" "$tmp/control/postinst" ||
	fail "postinst does not enable ingotd.service"
grep -q 'rm -rf /var/lib/ingot' "$tmp/control/postrm" || fail "postrm purge"
# Linked against the system's libraries, so they run from the extracted tree.
first=$("$tmp/root/usr/sbin/ingotd" --version)
first=${first%%$'\n'*}
[[ $first =~ ^ingotd\ ${version//./\\.}\ \(commit\ [0-9a-f]{12}(-dirty)?\)$ ]] ||
	fail "packaged ingotd --version: '$first' (the commit must reach the package)"
grep -q '^usage: ingotctl job submit' <<<"$("$tmp/root/usr/bin/ingotctl" help job submit)" ||
	fail "packaged ingotctl help"
if command -v man >/dev/null; then
	for page in "$tmp"/root/usr/share/man/man*/*.gz; do
		LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" >/dev/null 2>"$tmp/man.err" &&
			[ ! -s "$tmp/man.err" ] || fail "man -l $page: $(cat "$tmp/man.err")"
	done
fi
command -v lintian >/dev/null || echo "lintian not found: the package was not checked by it"

# Installed for real in a throwaway overlay of this machine (root, and a
# kernel that lets it make namespaces and overlays; skipped otherwise).
if [ "$(id -u)" = 0 ] && unshare -m -n -p -f --mount-proc true 2>/dev/null; then
	# Under the build directory: a disk, not the tmpfs /tmp may be.
	ovl=$(mktemp -d -p "$build" overlay.XXXXXX)
	unshare -m -n -p -f --mount-proc bash "$src/tests/install/overlay_install.sh" "$ovl" "$deb" ||
		fail "installing the package (overlay_install.sh, above)"
	rm -rf "$ovl"
else
	echo "not root or no namespaces here: the package was not installed and run"
fi

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed" >&2
	exit 1
fi
echo "package: all checks passed ($(basename "$deb"), $(stat -c %s "$deb") bytes)"
