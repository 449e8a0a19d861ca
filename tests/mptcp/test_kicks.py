"""The kernel answers the agent's kicks as the agent expects (hosts.agent.Agent.kick):
a SYN in the peer's name with a challenge ACK, at most once per
net.ipv4.tcp_invalid_ratelimit; a byte of data beyond the receive window with an ACK
every time; and neither harms the connection. Real MPTCP over a veth pair between two
throwaway namespaces; the kernel's MIB counters are the oracle."""

import json
import os
import subprocess
import sys

import pytest

from tests.integration.tools import REPO

PORT = 7777
ADDRESSES = {"v4": ("10.9.77.1", "10.9.77.2", 24), "v6": ("fd00:77::1", "fd00:77::2", 64)}
ECHO_SERVER = """
import socket
v6 = {v6}
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if v6 else "0.0.0.0", {port})); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); c.settimeout(20); c.sendall(b"G")
while data := c.recv(1 << 16):
    c.sendall(data)
c.close()
"""


@pytest.fixture(params=sorted(ADDRESSES))
def namespaces(request):
    """(client's namespace, server's, the server's address) with a veth pair between
    them, of the family ``request.param`` (IPv6 without duplicate address detection)."""
    client, server, plen = ADDRESSES[request.param]
    nodad = ["nodad"] if request.param == "v6" else []
    names = (f"tmptcp-kc-{os.getpid()}", f"tmptcp-ks-{os.getpid()}")
    cmds = [
        ["ip", "netns", "add", names[0]],
        ["ip", "netns", "add", names[1]],
        [
            "ip",
            "link",
            "add",
            "kick-c",
            "netns",
            names[0],
            "type",
            "veth",
            "peer",
            "name",
            "kick-s",
            "netns",
            names[1],
        ],
        ["ip", "-n", names[0], "addr", "add", f"{client}/{plen}", "dev", "kick-c", *nodad],
        ["ip", "-n", names[1], "addr", "add", f"{server}/{plen}", "dev", "kick-s", *nodad],
    ]
    for ns, dev in zip(names, ("kick-c", "kick-s"), strict=True):
        cmds += [
            ["ip", "-n", ns, "link", "set", "lo", "up"],
            ["ip", "-n", ns, "link", "set", dev, "up"],
        ]
        cmds += [["ip", "netns", "exec", ns, "sysctl", "-qw", "net.mptcp.enabled=1"]]
    try:
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True)
        yield (*names, server)
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_a_window_kick_is_answered_where_a_second_syn_is_held_back(namespaces):
    client_ns, server_ns, address = namespaces
    echo = ECHO_SERVER.format(port=PORT, v6=":" in address)
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, sys.executable, "-c", echo],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        probe = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                client_ns,
                sys.executable,
                "-m",
                "tests.mptcp.kick_probe",
                address,
                str(PORT),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode == 0, probe.stderr
        result = json.loads(probe.stdout)
    finally:
        server.kill()
        server.wait(10)
    steps = result["steps"]
    # The first SYN: a challenge ACK. The second, within the limit: held back, no ACK.
    assert steps["syn"].get("TcpExtTCPChallengeACK") == 1 and steps["syn"].get("TcpOutSegs") == 1
    assert steps["syn again"].get("TcpExtTCPACKSkippedChallenge") == 1
    assert "TcpOutSegs" not in steps["syn again"]
    # Each window kick, right after: dropped as beyond the window, answered by one ACK.
    for name in ("window 1", "window 2"):
        assert steps[name].get("TcpExtBeyondWindow") == 1, steps[name]
        assert steps[name].get("TcpOutSegs") == 1, steps[name]
        assert not any("Skipped" in k or "DSACK" in k for k in steps[name]), steps[name]
    # The connection is unharmed: a MiB each way, intact.
    assert result["echoed"] == result["sent"]
