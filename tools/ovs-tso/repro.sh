#!/usr/bin/env bash
# Minimal reproduction: OVS < 3.3 userspace TSO + a Linux router + TCP options.
#
#   sudo tools/ovs-tso/repro.sh
#
#   a --veth-- OVS bridge (userspace datapath, userspace TSO on) --veth-- r --veth-- b
#
# OVS 3.1 re-cuts the TSO packets it forwards into segments of MTU - 54 bytes of payload,
# as if the TCP header had no options (lib/netdev-linux.c, netdev_linux_prepend_vnet_hdr;
# fixed in OVS 3.3 by commit e0056018c "userspace: Respect tso/gso segment size"). Plain
# TCP with timestamps (12 bytes of options) just fits; MPTCP's DSS option makes every
# segment up to 40 bytes too big, and the router refuses to forward them (IpFragFails,
# ICMP fragmentation needed): MPTCP falls to almost nothing, even with one subflow. With
# 40 bytes of MTU headroom on the router it runs at full speed.
#
# Needs root, Open vSwitch running with other_config:userspace-tso-enable=true (`sudo
# OVS_USERSPACE_TSO=on scripts/start-ovs.sh`; with it off the transfers run with the
# bridge's hosts' TX checksum offload off, the testbed's default mode, and nothing
# breaks) and no testbed running (it holds the testbed lock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
py=${PYTHON:-python3}
seconds=${SECONDS_PER_RUN:-3}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "repro.sh: SECONDS_PER_RUN is a whole number of seconds, not '$seconds'" >&2; exit 2; }
repro_preflight tools/ovs-tso/repro.sh
tso=$(ovs_userspace_tso)
[ "$tso" = true ] || echo "repro.sh: userspace TSO is not on in OVS; the fault needs it (scripts/start-ovs.sh); the bridge's hosts' TX checksum offload goes off as in the testbed" >&2

br=tsorepro0
ns=(tsorepro-a tsorepro-r tsorepro-b)
cleanup() {
    set +e
    for n in "${ns[@]}"; do ip netns del "$n" 2>/dev/null; done
    ovs-vsctl --if-exists del-br "$br"
    for l in tsorepro-p1 tsorepro-p2; do ip link del "$l" 2>/dev/null; done
}
trap cleanup EXIT
cleanup
for n in "${ns[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
inside() { local n=$1; shift; ip netns exec "tsorepro-$n" "$@"; }
ovs-vsctl add-br "$br" -- set bridge "$br" datapath_type=netdev
ip link add tsorepro-p1 type veth peer name a-eth0 netns tsorepro-a
ip link add tsorepro-p2 type veth peer name r-eth0 netns tsorepro-r
ip link add r-eth1 netns tsorepro-r type veth peer name b-eth0 netns tsorepro-b
ovs-vsctl add-port "$br" tsorepro-p1 -- add-port "$br" tsorepro-p2
ip link set tsorepro-p1 up
ip link set tsorepro-p2 up
inside a ip addr add 10.91.1.1/24 dev a-eth0
inside a ip link set a-eth0 up
inside a ip route add default via 10.91.1.254
inside r ip addr add 10.91.1.254/24 dev r-eth0
inside r ip addr add 10.91.2.254/24 dev r-eth1
inside r ip link set r-eth0 up
inside r ip link set r-eth1 up
inside r sysctl -qw net.ipv4.ip_forward=1
inside b ip addr add 10.91.2.1/24 dev b-eth0
inside b ip link set b-eth0 up
inside b ip route add default via 10.91.2.254
if [ "$tso" != true ]; then  # without TSO the userspace datapath cannot finish checksums
    inside a ethtool -K a-eth0 tx off rx off >/dev/null
    inside r ethtool -K r-eth0 tx off rx off >/dev/null
fi
inside a ping -c1 -W2 10.91.2.1 >/dev/null || { echo "repro.sh: a cannot reach b" >&2; exit 1; }

run() {  # proto: one bulk transfer a -> b, prints the receiver's goodput
    inside b "$py" "$here/xfer.py" server 5001 "$1" >"/tmp/tsorepro.$$" &
    local server=$!
    wait_listening tsorepro-b 5001 || echo "repro.sh: the server did not listen on :5001" >&2
    inside a timeout $((seconds + 30)) "$py" "$here/xfer.py" client 10.91.2.1 5001 "$1" "$seconds" || true
    wait "$server" || true
    cat "/tmp/tsorepro.$$"
    rm -f "/tmp/tsorepro.$$"
}
frag_fails() { inside r nstat -saz IpFragFails | awk '/IpFragFails/ {print $2}'; }

for mtu in 1500 1540; do
    inside r ip link set r-eth0 mtu "$mtu"
    inside r ip link set r-eth1 mtu "$mtu"
    for proto in tcp mptcp; do
        before=$(frag_fails)
        echo "router MTU $mtu, $proto: $(run "$proto"), router IpFragFails +$(($(frag_fails) - before))"
    done
done
