#!/usr/bin/env bash
# Start Open vSwitch without systemd if it is not running. With no kernel module the
# bridges use the userspace datapath; TSO in userspace keeps TCP checksums right and fast.
set -euo pipefail
if ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
    exit 0
fi
ctl=/usr/share/openvswitch/scripts/ovs-ctl
[ -x "$ctl" ] || { echo "start-ovs.sh: $ctl not found; is openvswitch-switch installed?" >&2; exit 1; }
"$ctl" start --system-id=random --no-mlockall >/dev/null
ovs-vsctl --timeout=5 show >/dev/null
echo "start-ovs.sh: Open vSwitch started"
