# What the reductions in tools/ share; sourced by their scripts, not run.
# They build their own namespaces and bridge, so they refuse to run beside a testbed
# (the same lock as topologies/builder.py) and need root.

# repro_preflight NAME: root, and the testbed lock held (fd 9) until the script ends.
# The file is opened without truncating it: it names its holder, which a refused script
# must leave as it is; once held, it names this script.
repro_preflight() {
    local lock=/run/tmptcp-testbed.lock
    [ "$(id -u)" = 0 ] || { echo "$1: needs root" >&2; exit 2; }
    exec 9>>"$lock"
    flock -n 9 || { echo "$1: a testbed is running ($(cat "$lock" 2>/dev/null || true); lock $lock); try later" >&2; exit 2; }
    echo "pid $$, $1, since $(date +%H:%M:%S)" >"$lock"
}

# ovs_userspace_tso: prints true or false, whether Open vSwitch runs with userspace TSO.
ovs_userspace_tso() {
    local tso
    tso=$(ovs-vsctl --timeout=5 get Open_vSwitch . other_config:userspace-tso-enable 2>/dev/null | tr -d '"' || true)
    echo "${tso:-false}"
}

# wait_listening NETNS PORT: until something listens on TCP PORT in NETNS (5 s at most).
wait_listening() {
    for _ in $(seq 50); do
        ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q "$2" && return 0
        sleep 0.1
    done
    return 1
}
