#!/usr/bin/env bash
# test_install.sh BUILD_DIR VERSION - `cmake --install` of a build into a
# scratch prefix, then checks what landed there: every file, the programs
# run from there (--version), the man pages rendered by man(1) without a
# groff warning, the systemd unit (paths of this prefix, `systemd-analyze
# verify` clean and its exposure score, where systemd-analyze exists), the
# sysusers.d entry (systemd-sysusers in a scratch root), the bash
# completion as ingotctl makes it, and the
# production configuration template read by the installed ingotd.
set -euo pipefail
build=$1
version=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/usr
fails=0
fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"

for f in sbin/ingotd bin/ingotctl \
	share/man/man8/ingotd.8 share/man/man1/ingotctl.1 \
	share/bash-completion/completions/ingotctl \
	lib/systemd/system/ingotd.service lib/sysusers.d/ingot.conf \
	share/doc/ingot/README.md share/doc/ingot/operations.md share/doc/ingot/cli.md \
	share/doc/ingot/api.md share/doc/ingot/openapi.json share/doc/ingot/examples/ingotd.yaml \
	share/doc/ingot/examples/dev/node1.yaml share/doc/ingot/examples/local-3/node3.yaml \
	share/doc/ingot/examples/local-5/node5.yaml \
	share/doc/ingot/examples/targets/x86_64-avx2.yaml \
	share/doc/ingot/examples/kernels/fir/fir.c; do
	[ -s "$prefix/$f" ] || fail "not installed: $f"
done
[ -x "$prefix/sbin/ingotd" ] && [ -x "$prefix/bin/ingotctl" ] || fail "programs not executable"

# The programs, run from the prefix.
for prog in sbin/ingotd bin/ingotctl; do
	name=${prog#*/}
	first=$("$prefix/$prog" --version)
	first=${first%%$'\n'*}
	[[ $first =~ ^$name\ ${version//./\\.}\ \(commit\ ([0-9a-f]{7,40}(-dirty)?|unknown)\)$ ]] ||
		fail "$name --version: '$first'"
done

# Configured files: no @VAR@ left, paths of this prefix.
if grep -l '@[A-Z_]*@' "$prefix"/share/man/man*/* "$prefix/lib/systemd/system/ingotd.service" \
	"$prefix/lib/sysusers.d/ingot.conf"; then
	fail "placeholders left in the files above"
fi
unit=$prefix/lib/systemd/system/ingotd.service
grep -qx "ExecStart=$prefix/sbin/ingotd --config $prefix/etc/ingot/ingotd.yaml" "$unit" ||
	fail "ExecStart: $(grep ExecStart= "$unit")"
grep -qx "ConditionPathExists=$prefix/etc/ingot/ingotd.yaml" "$unit" ||
	fail "the unit must not start without its configuration"
for key in User=ingot NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
	ReadWritePaths=/var/lib/ingot StateDirectory=ingot LimitNOFILE=65536 OOMPolicy=continue \
	RestartPreventExitStatus=2; do
	grep -qx "$key" "$unit" || fail "the unit lacks $key"
done
grep -q '^RestrictAddressFamilies=' "$unit" || fail "the unit lacks RestrictAddressFamilies="
grep -qx 'u ingot - "ingot cluster node" /var/lib/ingot /usr/sbin/nologin' \
	"$prefix/lib/sysusers.d/ingot.conf" || fail "sysusers.d entry"
# The entry creates the user, in a scratch root's copy of the user tables.
if command -v systemd-sysusers >/dev/null; then
	mkdir -p "$tmp/root/etc"
	for f in passwd group shadow gshadow; do
		[ -r "/etc/$f" ] && cp "/etc/$f" "$tmp/root/etc/"
	done
	systemd-sysusers --root="$tmp/root" "$prefix/lib/sysusers.d/ingot.conf" >/dev/null 2>&1 &&
		grep -q '^ingot:x:[0-9]*:[0-9]*:ingot cluster node:/var/lib/ingot:/usr/sbin/nologin$' \
			"$tmp/root/etc/passwd" || fail "systemd-sysusers did not create the user ingot"
fi

# Man pages: groff's own warnings (-ww), then man(1) as a user gets it.
for page in "$prefix"/share/man/man8/ingotd.8 "$prefix"/share/man/man1/ingotctl.1; do
	if command -v groff >/dev/null; then
		warn=$(groff -man -ww -z "$page" 2>&1) || true
		[ -z "$warn" ] || fail "groff warnings in $page: $warn"
	fi
	if command -v man >/dev/null; then
		text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>"$tmp/man.err") ||
			fail "man -l $page failed"
		[ ! -s "$tmp/man.err" ] || fail "man -l $page: $(cat "$tmp/man.err")"
		grep -q "^NAME" <<<"$text" || fail "man -l $page: no NAME section"
		grep -q "ingot $version" <<<"$text" || fail "man -l $page: no 'ingot $version' footer"
	fi
done
command -v man >/dev/null || echo "man not found: man pages checked with groff only (scripts/setup installs man-db)"
# ingotd(8) describes every option ingotd --help lists.
for opt in $("$prefix/sbin/ingotd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	grep -qF -- "${opt//-/\\-}" "$prefix/share/man/man8/ingotd.8" || fail "ingotd.8 lacks $opt"
done

# The completion is what ingotctl makes.
diff <("$prefix/bin/ingotctl" completion bash) \
	"$prefix/share/bash-completion/completions/ingotctl" >/dev/null ||
	fail "installed completion differs from 'ingotctl completion bash'"
bash -n "$prefix/share/bash-completion/completions/ingotctl" || fail "completion: bash syntax"

# The template parses: every key is read and checked before ingotd fails on
# the addresses (overridden here so that it cannot start, whatever this
# machine's addresses).
out=$("$prefix/sbin/ingotd" --config "$prefix/share/doc/ingot/examples/ingotd.yaml" \
	--data-dir "$tmp/data" --api-address 127.0.0.1:1 2>&1) && rc=0 || rc=$?
[ "$rc" = 2 ] && grep -q "peers" <<<"$out" || fail "template: exit $rc, '$out'"
[ ! -e "$tmp/data" ] || fail "template check wrote $tmp/data"

# The unit as systemd reads it.
if command -v systemd-analyze >/dev/null; then
	if ! MANPATH="$prefix/share/man:" systemd-analyze verify "$unit" >"$tmp/verify" 2>&1 ||
		[ -s "$tmp/verify" ]; then
		fail "systemd-analyze verify: $(cat "$tmp/verify")"
	fi
	# Exposure 0 (locked down) to 10: hardening the sandboxed worker allows
	# brought it to 4.0; above 4.9 systemd calls it MEDIUM.
	exposure=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
		sed -n 's/.*Overall exposure level for ingotd.service: \([0-9.]*\).*/\1/p')
	echo "systemd-analyze security: exposure $exposure"
	awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 4.9) }' ||
		fail "exposure '$exposure' above 4.9"
else
	echo "systemd-analyze not found: the unit was not verified"
fi

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed" >&2
	exit 1
fi
echo "install: all checks passed ($prefix)"
