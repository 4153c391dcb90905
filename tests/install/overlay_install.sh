#!/usr/bin/env bash
# overlay_install.sh DIR DEB - installs DEB for real in a throwaway copy of
# this machine and checks what an operator would see: an overlay of / whose
# changes go under DIR, chrooted into, in the mount, network and
# PID namespaces the caller made (`unshare -m -n -p -f --mount-proc`, root),
# so that the machine itself is not touched, the node's ports are private
# (offset by INGOT_CLUSTER_PORT_OFFSET all the same) and only its own
# processes are seen.
#
#   install: the user and group ingot, /var/lib/ingot and /etc/ingot with
#            their modes, the unit enabled, nothing started, no config;
#   the unit: systemd-analyze verify at its installed place;
#   a node:   run as the unit runs it (user ingot, its data directory,
#            loopback), answers `ingotctl status`, stops on SIGTERM with 0;
#   reinstall (the upgrade path of the scripts), remove (data kept), purge
#   (data and enablement gone, the operator's config kept).
set -euo pipefail
dir=$1
deb=$2
ovl=$dir/ovl
mkdir -p "$ovl/upper" "$ovl/work" "$ovl/root"
# The changes go to DIR's file system, a disk as a node's data would be.
# Where that cannot be an overlay's upper layer (DIR on an overlay itself),
# to a tmpfs, where ingotd is known to crash in libraft's close 1 time in 3
# on SIGTERM (reported; not a packaging matter).
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$ovl/upper,workdir=$ovl/work" \
	"$ovl/root" 2>/dev/null; then
	echo "note: $dir cannot hold an overlay's upper layer; using a tmpfs"
	mount -t tmpfs tmpfs "$ovl"
	mkdir -p "$ovl/upper" "$ovl/work" "$ovl/root"
	mount -t overlay overlay -o "lowerdir=/,upperdir=$ovl/upper,workdir=$ovl/work" "$ovl/root"
fi
mount --bind /proc "$ovl/root/proc"
mount --bind /dev "$ovl/root/dev"
ip link set lo up
cp "$deb" "$ovl/root/root/ingot.deb"

chroot "$ovl/root" /bin/bash -s <<'EOF'
set -euo pipefail
fails=0
fail() {
	echo "FAIL (installed): $*" >&2
	fails=$((fails + 1))
}
export DEBIAN_FRONTEND=noninteractive
getent passwd ingot >/dev/null && echo "note: user ingot exists on this machine already"

dpkg -i /root/ingot.deb >/root/dpkg.log 2>&1 || { cat /root/dpkg.log >&2; exit 1; }
IFS=: read -r _ _ uid gid _ home shell <<<"$(getent passwd ingot)" || fail "no user ingot"
[ "$home" = /var/lib/ingot ] || fail "home of ingot: $home"
[ "$shell" = /usr/sbin/nologin ] || fail "shell of ingot: $shell"
[ "$uid" -lt 1000 ] || fail "ingot is not a system user (uid $uid)"
getent group ingot >/dev/null || fail "no group ingot"
[ "$(stat -c '%U:%G %a' /var/lib/ingot)" = "ingot:ingot 750" ] ||
	fail "/var/lib/ingot: $(stat -c '%U:%G %a' /var/lib/ingot)"
[ "$(stat -c '%U:%G %a' /etc/ingot)" = "root:ingot 750" ] ||
	fail "/etc/ingot: $(stat -c '%U:%G %a' /etc/ingot)"
[ -z "$(ls -A /etc/ingot)" ] || fail "/etc/ingot is not empty after install"
[ -L /etc/systemd/system/multi-user.target.wants/ingotd.service ] || fail "the unit is not enabled"
pgrep -x ingotd >/dev/null && fail "an ingotd runs after install"
man -w ingotd >/dev/null 2>&1 && man -w ingotctl >/dev/null 2>&1 || fail "man ingotd / ingotctl"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify /lib/systemd/system/ingotd.service 2>&1) && [ -z "$out" ] ||
		fail "systemd-analyze verify: $out"
fi

# A node, run as the unit runs it.
api=127.0.0.1:$((7401 + ${INGOT_CLUSTER_PORT_OFFSET:-0}))
raft=127.0.0.1:$((7501 + ${INGOT_CLUSTER_PORT_OFFSET:-0}))
cat >/etc/ingot/ingotd.yaml <<YAML
id: 1
data_dir: /var/lib/ingot
raft_address: $raft
api_address: $api
peers:
  - {id: 1, raft_address: $raft, api_address: $api}
# A chroot cannot make user namespaces (the kernel refuses CLONE_NEWUSER
# there), so the stage sandbox cannot run in this overlay.
sandbox: off
YAML
chgrp ingot /etc/ingot/ingotd.yaml
chmod 0640 /etc/ingot/ingotd.yaml
(cd /var/lib/ingot && umask 0027 &&
	exec setpriv --reuid=ingot --regid=ingot --init-groups \
		/usr/sbin/ingotd --config /etc/ingot/ingotd.yaml) >/root/ingotd.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	ingotctl --endpoints "$api" --timeout 1s status 2>/dev/null | grep -q '^leader: 1 ' && break
	sleep 0.1
done
ingotctl --endpoints "$api" --timeout 1s status | grep -q '^leader: 1 ' || fail "the node has no leader: $(cat /root/ingotd.log)"
[ "$(stat -c %U /var/lib/ingot/state.mdb)" = ingot ] || fail "state.mdb not owned by ingot"
kill -TERM "$pid"
wait "$pid" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "ingotd exited $rc on SIGTERM: $(tail -n 5 /root/ingotd.log)"

# Reinstall: the upgrade path of the maintainer scripts; nothing lost.
dpkg -i /root/ingot.deb >/root/dpkg.log 2>&1 || { cat /root/dpkg.log >&2; exit 1; }
[ -s /var/lib/ingot/state.mdb ] && [ -s /etc/ingot/ingotd.yaml ] || fail "reinstall lost data"
dpkg -r ingot >/root/dpkg.log 2>&1 || { cat /root/dpkg.log >&2; exit 1; }
grep -q 'warning' /root/dpkg.log && fail "dpkg -r: $(cat /root/dpkg.log)"
[ -s /var/lib/ingot/state.mdb ] || fail "remove deleted the data"
[ ! -e /usr/sbin/ingotd ] || fail "remove left /usr/sbin/ingotd"
dpkg --purge ingot >/root/dpkg.log 2>&1 || { cat /root/dpkg.log >&2; exit 1; }
[ ! -e /var/lib/ingot ] || fail "purge left /var/lib/ingot"
[ -s /etc/ingot/ingotd.yaml ] || fail "purge deleted the operator's configuration"
[ ! -e /etc/systemd/system/multi-user.target.wants/ingotd.service ] ||
	fail "purge left the unit enabled"
[ "$fails" -eq 0 ] || exit 1
echo "installed, ran a node, reinstalled, removed and purged: all checks passed"
EOF
