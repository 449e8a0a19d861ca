#!/usr/bin/env bash
# Start Open vSwitch without systemd if it is not running. With no kernel module the
# bridges use the userspace datapath, with userspace TSO on (set before ovs-vswitchd
# starts, the only time it reads it; a running OVS with no bridges is restarted to
# change it): the hosts keep their checksum and segmentation offloads and TCP runs at
# several Gbit/s instead of under one (docs/line-rate.md). OVS_USERSPACE_TSO=off starts
# it without, as before 2026-12-05: the testbed then turns the hosts' TX checksum offload
# off instead (topologies.nodes.userspace_tso() tells which mode OVS is in). The kernel
# datapath keeps its defaults.
set -euo pipefail
ctl=/usr/share/openvswitch/scripts/ovs-ctl
[ -x "$ctl" ] || { echo "start-ovs.sh: $ctl not found; is openvswitch-switch installed?" >&2; exit 1; }
opts=(--system-id=random --no-mlockall)
want=false
case "${OVS_USERSPACE_TSO:-on}" in
on | off) ;;
*) echo "start-ovs.sh: OVS_USERSPACE_TSO is on or off, not '$OVS_USERSPACE_TSO'" >&2; exit 2 ;;
esac
if [ ! -d /sys/module/openvswitch ] && [ "${OVS_USERSPACE_TSO:-on}" = on ]; then
    want=true
fi
# With TSO, OVS's per-port AF_PACKET sockets receive 64-KB packets; the default 208-KB
# receive buffer holds three, and a 4-subflow MPTCP transfer lost ~170 of them (thousands
# of segments) per 30 MB (`ss -0 -m`: d<drops>). Sockets take the default when OVS opens
# them (when a port is added), so raise it now.
PACKET_RCVBUF=$((4 << 20))
raise_rcvbuf() {
    if [ "$want" = true ] && [ "$(sysctl -n net.core.rmem_default)" -lt "$PACKET_RCVBUF" ]; then
        sysctl -qw net.core.rmem_default="$PACKET_RCVBUF"
    fi
}
raise_rcvbuf
tso_setting() { ovs-vsctl --timeout=5 get Open_vSwitch . other_config:userspace-tso-enable 2>/dev/null | tr -d '"' || true; }

running() { ovs-vsctl --timeout=2 show >/dev/null 2>&1 && ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; }

if running; then
    now=$(tso_setting)
    [ "${now:-false}" = "$want" ] && exit 0
    if [ -n "$(ovs-vsctl --timeout=5 list-br)" ]; then
        echo "start-ovs.sh: userspace TSO is ${now:-false}, wanted $want, but bridges exist" \
            "(a testbed running?); left as it is" >&2
        exit 0
    fi
    ovs-vsctl --timeout=5 set Open_vSwitch . other_config:userspace-tso-enable="$want"
    "$ctl" restart "${opts[@]}" >/dev/null 2>&1
    ovs-vsctl --timeout=5 show >/dev/null
    echo "start-ovs.sh: Open vSwitch restarted with userspace TSO $want"
    exit 0
fi
"$ctl" start --no-ovs-vswitchd "${opts[@]}" >/dev/null 2>&1
ovs-vsctl --timeout=5 --no-wait set Open_vSwitch . other_config:userspace-tso-enable="$want"
"$ctl" start --no-ovsdb-server "${opts[@]}" >/dev/null 2>&1
ovs-vsctl --timeout=5 show >/dev/null
echo "start-ovs.sh: Open vSwitch started (userspace TSO $want)"
