#!/usr/bin/env bash
# Reduced reproduction: multi-subflow MPTCP through an OVS userspace-TSO bridge stalls.
#
#   sudo tools/mptcp-stall/repro.sh            # 4 subflows through one OVS bridge
#   sudo MODE=veth tools/mptcp-stall/repro.sh  # the same hosts joined by plain veth pairs
#
#   a --PATHS veths-- OVS bridge (userspace datapath, userspace TSO on) --PATHS veths-- b
#
# No router, no SAVI, no agent, no attack: the kernel's own path manager opens one
# subflow per path (a's endpoints, flag "subflow") and a bulk MPTCP transfer runs a -> b
# for SECONDS_PER_RUN, RUNS times. Each run prints the receiver's goodput, how many
# segments the receiver's MPTCP socket dropped as beyond the data-level window it had
# announced (MPTcpExtNoDSSInWindow at b), the sender's data-level retransmissions
# (MPTcpExtMPTCPRetrans at a) and what OVS itself dropped (port tx drops; with MODE=ovs).
# A run that stalls shows NoDSSInWindow > 0 and its goodput falls, to a few hundred
# Mbit/s at worst: the receiver drops, as out of its window, data the sender sent past
# it, and only the sender's slow data-level retransmissions recover it. The sender's
# kernel took an edge the receiver never announced (a data ACK plus a stale subflow
# window; docs/line-rate.md, REPORT.md).
#
# RMEM_MAX=<bytes> sets the hosts' receive-buffer maximum (net.ipv4.tcp_rmem), which
# changes how often it happens (docs/line-rate.md).
#
# FILTER=on attaches the testbed's work-around to b's interfaces (egress):
# hosts/bpf/stale_window.c takes the data ACK out of b's ACKs whose window a's TCP would
# not take while a's MPTCP would add that data ACK to the window TCP kept. With it no ACK teaches a an edge
# b never announced (CAPTURE's replay counts them) and the stall goes (docs/line-rate.md).
#
# RATE=<rate> shapes each of a's paths to that rate (tc tbf at a's interfaces, for
# example 1gbit): whether a sender held below what b's application reads avoids it.
#
# CAPTURE=<folder> captures each run at the sender (tcpdump on a's interfaces, headers
# only) and replays it with window_replay.py: how many new data segments a sent past every
# data-level edge b had announced, and how many of them lay within the edge a's kernel
# computes (data ACK + the subflow's window as TCP last accepted it), which is the fault
# (docs/line-rate.md). The captures of runs that stalled stay in <folder>/run-N; the
# others are removed.
#
# Needs root, Open vSwitch running with other_config:userspace-tso-enable=true (with it
# off the transfers run through the same bridge with the hosts' TX checksum offload off,
# the testbed's default mode, for comparison) and no testbed running (it holds the
# testbed lock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
xfer=$here/../ovs-tso/xfer.py
py=${PYTHON:-python3}
seconds=${SECONDS_PER_RUN:-3}
runs=${RUNS:-20}
paths=${PATHS:-4}
mode=${MODE:-ovs}
rmem_max=${RMEM_MAX:-}  # the hosts' net.ipv4.tcp_rmem maximum (bytes); the kernel's if unset
capture=${CAPTURE:-}  # a folder for the sender's captures; none if unset
rate=${RATE:-}  # each of a's paths shaped to this rate (tc tbf); none if unset
filter=${FILTER:-off}  # on: the stale-window filter on b's egress
port=5001
case "$mode" in ovs | veth) ;; *) echo "repro.sh: MODE is ovs or veth, not '$mode'" >&2; exit 2 ;; esac
[[ "$paths" =~ ^[1-8]$ ]] || { echo "repro.sh: PATHS is 1 to 8, not '$paths'" >&2; exit 2; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "repro.sh: RUNS is a positive number, not '$runs'" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "repro.sh: SECONDS_PER_RUN is a number, not '$seconds'" >&2; exit 2; }
[[ "$rmem_max" =~ ^([1-9][0-9]{4,})?$ ]] || { echo "repro.sh: RMEM_MAX is a number of bytes (at least 10000), not '$rmem_max'" >&2; exit 2; }
case "$filter" in on | off) ;; *) echo "repro.sh: FILTER is on or off, not '$filter'" >&2; exit 2 ;; esac
filter_object=$here/../../hosts/bpf/stale_window.o
if [ "$filter" = on ] && [ ! -f "$filter_object" ]; then
    echo "repro.sh: FILTER=on needs $filter_object (sudo make install builds it)" >&2
    exit 2
fi
[[ "$rate" =~ ^([1-9][0-9]*(\.[0-9]+)?[kmg]bit)?$ ]] || { echo "repro.sh: RATE is a rate such as 500mbit or 2gbit, not '$rate'" >&2; exit 2; }
repro_preflight tools/mptcp-stall/repro.sh
if [ -n "$capture" ]; then
    for tool in tcpdump tshark; do
        command -v "$tool" >/dev/null || { echo "repro.sh: CAPTURE needs $tool" >&2; exit 2; }
    done
    mkdir -p "$capture" 2>/dev/null && [ -w "$capture" ] ||
        { echo "repro.sh: CAPTURE folder '$capture' cannot be written" >&2; exit 2; }
    capture=$(cd "$capture" && pwd)
fi
tso=n/a
if [ "$mode" = ovs ]; then
    tso=$(ovs_userspace_tso)
    [ "$tso" = true ] || echo "repro.sh: userspace TSO is not on in OVS; the stall needs it (scripts/start-ovs.sh); hosts' TX checksum offload goes off as in the testbed" >&2
fi

br=mpstall0
ns=(mpstall-a mpstall-b)
tcpdumps=()
cleanup() {
    set +e
    [ "${#tcpdumps[@]}" -gt 0 ] && kill "${tcpdumps[@]}" 2>/dev/null && wait "${tcpdumps[@]}" 2>/dev/null
    for n in "${ns[@]}"; do ip netns del "$n" 2>/dev/null; done
    [ "$mode" = ovs ] && ovs-vsctl --timeout=5 --if-exists del-br "$br"
    for i in $(seq "$paths"); do
        ip link del "mpstall-a$i" 2>/dev/null
        ip link del "mpstall-b$i" 2>/dev/null
    done
    rm -f "/tmp/mpstall.$$"
}
trap cleanup EXIT
cleanup
for n in "${ns[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
inside() { local n=$1; shift; ip netns exec "mpstall-$n" "$@"; }
[ "$mode" = ovs ] && ovs-vsctl --timeout=5 add-br "$br" -- set bridge "$br" datapath_type=netdev
for i in $(seq "$paths"); do
    if [ "$mode" = veth ]; then
        ip link add "a-eth$i" netns mpstall-a type veth peer name "b-eth$i" netns mpstall-b
    else
        ip link add "mpstall-a$i" type veth peer name "a-eth$i" netns mpstall-a
        ip link add "mpstall-b$i" type veth peer name "b-eth$i" netns mpstall-b
        ovs-vsctl --timeout=5 add-port "$br" "mpstall-a$i" -- add-port "$br" "mpstall-b$i"
        ip link set "mpstall-a$i" up
        ip link set "mpstall-b$i" up
    fi
    inside a ip addr add "10.93.$i.1/24" dev "a-eth$i"
    inside a ip link set "a-eth$i" up
    inside b ip addr add "10.93.$i.2/24" dev "b-eth$i"
    inside b ip link set "b-eth$i" up
    if [ "$filter" = on ]; then
        inside b tc qdisc replace dev "b-eth$i" clsact
        inside b tc filter replace dev "b-eth$i" egress pref 7 bpf obj "$filter_object" sec tc direct-action
    fi
    if [ -n "$rate" ]; then  # a burst of eight 64-KB TSO packets; 50 ms of queue at most
        inside a tc qdisc replace dev "a-eth$i" root tbf rate "$rate" burst 512kb latency 50ms
    fi
    if [ "$mode" = ovs ] && [ "$tso" != true ]; then
        # Without TSO the userspace datapath cannot finish checksums (the testbed does the same).
        inside a ethtool -K "a-eth$i" tx off rx off >/dev/null
        inside b ethtool -K "b-eth$i" tx off rx off >/dev/null
    fi
done
for n in a b; do
    inside "$n" ip mptcp limits set subflows 8 add_addr_accepted 8
    if [ -n "$rmem_max" ]; then
        read -r low default _ <"/proc/sys/net/ipv4/tcp_rmem"
        inside "$n" sysctl -qw net.ipv4.tcp_rmem="$low $default $rmem_max"
    fi
done
for i in $(seq 2 "$paths"); do inside a ip mptcp endpoint add "10.93.$i.1" dev "a-eth$i" subflow; done
inside a ping -c1 -W2 10.93.1.2 >/dev/null || { echo "repro.sh: a cannot reach b" >&2; exit 1; }

counter() { inside "$1" nstat -saz "$2" | awk -v k="$2" '$1 == k {print $2}'; }
ovs_drops() {  # tx drops of the bridge's ports to and from the hosts (not LOCAL's floods)
    [ "$mode" = ovs ] || { echo 0; return; }
    ovs-ofctl dump-ports "$br" | awk '/port +[0-9]+:/ {p = 1} /port +LOCAL:/ {p = 0}
        /tx pkts/ && p {split($0, f, "drop="); split(f[2], g, ","); s += g[1]} END {print s + 0}'
}
start_capture() {  # $1: the run's folder; tcpdump's own PIDs (ip netns exec execs it)
    mkdir -p "$1"
    tcpdumps=()
    for i in $(seq "$paths"); do
        ip netns exec mpstall-a tcpdump -q -n --immediate-mode -i "a-eth$i" -s 160 -B 65536 \
            -w "$1/a$i.pcap" "tcp port $port" 2>"$1/a$i.log" &
        tcpdumps+=($!)
    done
    for i in $(seq "$paths"); do
        for _ in $(seq 50); do grep -q "listening on" "$1/a$i.log" && break; sleep 0.1; done
        grep -q "listening on" "$1/a$i.log" || { echo "repro.sh: tcpdump did not start on a-eth$i" >&2; exit 1; }
    done
}
stop_capture() {  # $1: the run's folder, $2: NoDSSInWindow of the run
    # SIGTERM and wait: tcpdump writes out its buffer; a capture cut short loses ACKs,
    # and missing ACKs would look like overshoots in the replay (which also stops where
    # the shortest capture ends).
    kill "${tcpdumps[@]}" 2>/dev/null || true
    wait "${tcpdumps[@]}" 2>/dev/null || true
    tcpdumps=()
    local dropped replay
    dropped=$(cat "$1"/a*.log | awk '/dropped by kernel/ {s += $1} END {print s + 0}')
    replay=$("$py" "$here/window_replay.py" "$1" 2>&1) || true
    if [ "$2" -gt 0 ]; then
        echo "capture of run $r: tcpdump dropped $dropped; $replay; kept in $1"
    else
        echo "capture of run $r: tcpdump dropped $dropped; $replay; removed"
        rm -rf "$1"
    fi
}
stalled=0
for r in $(seq "$runs"); do
    nodss=$(counter b MPTcpExtNoDSSInWindow)
    retrans=$(counter a MPTcpExtMPTCPRetrans)
    joins=$(counter a MPTcpExtMPJoinSynAckRx)
    drops=$(ovs_drops)
    if [ -n "$capture" ]; then start_capture "$capture/run-$r"; fi
    inside b "$py" "$xfer" server "$port" mptcp >"/tmp/mpstall.$$" &
    server=$!
    wait_listening mpstall-b "$port" || echo "repro.sh: the server did not listen on :$port" >&2
    inside a timeout "$(awk -v s="$seconds" 'BEGIN {print int(s) + 40}')" \
        "$py" "$xfer" client 10.93.1.2 "$port" mptcp "$seconds" || true
    wait "$server" || true
    nodss=$(($(counter b MPTcpExtNoDSSInWindow) - nodss))
    [ "$nodss" -gt 0 ] && stalled=$((stalled + 1))
    goodput=$(cat "/tmp/mpstall.$$")
    echo "run $r: ${goodput:-no transfer (see the errors above)}, subflows $((1 + $(counter a MPTcpExtMPJoinSynAckRx) - joins))," \
        "NoDSSInWindow +$nodss, MPTCPRetrans +$(($(counter a MPTcpExtMPTCPRetrans) - retrans))," \
        "OVS drops +$(($(ovs_drops) - drops))"
    if [ -n "$capture" ]; then stop_capture "$capture/run-$r" "$nodss"; fi
done
echo "$stalled of $runs runs dropped data beyond the receiver's window ($mode, $paths paths, TSO $tso, stale-window filter $filter, rate per path ${rate:-unshaped}," \
    "tcp_rmem $(inside b cat /proc/sys/net/ipv4/tcp_rmem | tr '\t' ' '))"
