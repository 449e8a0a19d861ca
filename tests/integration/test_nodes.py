"""Our node classes on a real (tiny) Mininet network: RoutedHost configures its address,
MAC and routes in one `ip -batch`, and a route the kernel refuses stops the build with
the host's name and the kernel's words."""

import socket

import pytest
from mininet.net import Mininet
from mininet.topo import Topo

from tests.integration.tools import wait_until
from topologies.nodes import LegacySwitch, OpenFlowController, RoutedHost


class OneHost(Topo):
    def build(self, routing=()):
        s = self.addSwitch("s91", cls=LegacySwitch, dpid="0000000000000091")
        h = self.addHost(
            "rh91",
            cls=RoutedHost,
            ip="10.91.0.10/24",
            mac="02:00:00:00:91:0a",
            routing=list(routing),
        )
        self.addLink(h, s)


def build(routing):
    net = Mininet(topo=OneHost(routing=routing), controller=None, build=False, autoSetMacs=False)
    try:
        net.build()
        return net, net["rh91"]
    except BaseException:
        net.stop()
        raise


def test_address_mac_and_routes_are_configured():
    net, host = build(["route add 10.92.0.0/16 via 10.91.0.1"])
    try:
        assert host.MAC() == "02:00:00:00:91:0a" and host.IP() == "10.91.0.10"
        link = host.cmd("ip -o link show dev rh91-eth0")
        assert "02:00:00:00:91:0a" in link and ",UP" in link
        assert "10.91.0.10/24" in host.cmd("ip -o addr show dev rh91-eth0")
        assert "10.92.0.0/16 via 10.91.0.1" in host.cmd("ip route")
        assert "UP" in host.cmd("ip -o link show dev lo")
    finally:
        net.stop()


def test_a_route_the_kernel_refuses_stops_the_build_naming_the_host():
    with pytest.raises(RuntimeError, match=r"rh91: configuring rh91-eth0: .*[Nn]exthop"):
        build(["route add 10.92.0.0/16 via 10.93.0.1"])  # no such gateway on any link


def test_the_controller_nodes_shell_ends_with_the_network():
    """Mininet never terminates a remote controller's node: its shell outlived every
    testbed until the Python process ended. Stopping the network ends it; the
    controller it points at keeps listening."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        net = Mininet(topo=None, controller=None, build=False)
        node = net.addController("c91", controller=OpenFlowController, ip="127.0.0.1", port=port)
        shell = node.shell
        assert shell.poll() is None
        net.stop()
        wait_until(lambda: shell.poll() is not None, 5, "c91's shell to end")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
