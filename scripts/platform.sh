# Platform knowledge for the installer: which OS this is and what it needs.
# Sourced by scripts/install.sh and by the unit tests (with OS_RELEASE pointing at a fixture).

# Debian 12 and Ubuntu 24.04 share these package names.
COMMON_PACKAGES="openvswitch-switch mininet dnsmasq-base udhcpc tshark tcpdump ethtool
iproute2 iputils-ping iputils-arping ndisc6 nftables iptables procps psmisc
python3-venv python3-dev gcc make libnetfilter-queue-dev ruby curl clang libbpf-dev
isc-dhcp-client openssh-server sudo"

# detect_platform: print "<id> <version>" of the running OS, from os-release.
detect_platform() {
    local file="${OS_RELEASE:-/etc/os-release}"
    [ -r "$file" ] || { echo "unknown unknown"; return; }
    # shellcheck disable=SC1090
    ( . "$file"; echo "${ID:-unknown} ${VERSION_ID:-unknown}" )
}

# platform_packages ID VERSION: Debian packages to install, or fail naming what is unsupported.
platform_packages() {
    case "$1 $2" in
        # Chromium runs the live view's test headless (Ubuntu ships it only as a snap:
        # there the test is skipped). perf: the benchmark's goodput profile.
        "debian 12") echo "$COMMON_PACKAGES bpftool chromium linux-perf" ;;
        # Ubuntu ships bpftool and perf with the kernel's tools.
        "ubuntu 24.04") echo "$COMMON_PACKAGES linux-tools-common linux-tools-generic software-properties-common" ;;
        *) return 1 ;;
    esac
}

# platform_python ID VERSION: the Python 3.11 interpreter the venv is made from.
# Ubuntu 24.04 ships only 3.12; Ryu 4.34 and our pins need 3.11 (deadsnakes archive).
platform_python() {
    case "$1 $2" in
        "debian 12") echo /usr/bin/python3 ;;
        "ubuntu 24.04") echo /usr/bin/python3.11 ;;
        *) return 1 ;;
    esac
}

# platform_python_packages ID VERSION: extra packages that provide that interpreter.
platform_python_packages() {
    case "$1 $2" in
        "debian 12") echo "" ;;
        "ubuntu 24.04") echo "python3.11 python3.11-venv python3.11-dev" ;;
        *) return 1 ;;
    esac
}

# ovs_datapath: "system" when the Open vSwitch kernel module is available, else "user".
ovs_datapath() {
    if [ -d /sys/module/openvswitch ] || modprobe -q openvswitch 2>/dev/null; then
        echo system
    else
        echo user
    fi
}

# unsupported_message ID VERSION: what to do on an OS the installer does not know.
unsupported_message() {
    cat <<MSG
This installer knows Debian 12 and Ubuntu 24.04; this machine is '$1 $2'.
Install by hand: Open vSwitch (>= 2.17), Mininet 2.3 (with mnexec), dnsmasq, udhcpc,
tshark, ethtool, iproute2, nftables, iptables, ndisc6, arping, Python 3.11 with venv and
headers, gcc, libnetfilter-queue headers; then run: make venv
MSG
}
