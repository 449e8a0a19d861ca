"""Cluster mode's plain parts: the cluster description, node classes, remote processes."""

import subprocess
import sys

import pytest

from topologies.__main__ import parse
from topologies.cluster import (
    Cluster,
    ClusterError,
    ClusterLegacySwitch,
    ClusterRoutedHost,
    ClusterSaviSwitch,
    RemoteProcess,
    cluster_class,
)
from topologies.nodes import LegacySwitch, OvsMode, RoutedHost, SaviSwitch, tso_enabled


def test_a_cluster_is_parsed_from_the_servers_option():
    c = Cluster.parse("localhost, 10.0.0.2,10.0.0.3", placement="round-robin")
    assert c.servers == ("localhost", "10.0.0.2", "10.0.0.3")
    assert c.placement == "round-robin" and c.ssh_options() == []


@pytest.mark.parametrize(
    "servers, words",
    [
        ("localhost", "two servers"),
        ("10.0.0.2,localhost", "must be named localhost"),
        ("localhost,10.0.0.2,10.0.0.2", "named twice"),
    ],
)
def test_bad_server_lists_are_refused(servers, words):
    with pytest.raises(ClusterError, match=words):
        Cluster.parse(servers)


def test_a_missing_ssh_config_and_an_unknown_placement_are_refused(tmp_path):
    with pytest.raises(ClusterError, match="does not exist"):
        Cluster.parse("localhost,h2", ssh_config=tmp_path / "none")
    with pytest.raises(ClusterError, match="placement must be one of"):
        Cluster.parse("localhost,h2", placement="random")
    cfg = tmp_path / "ssh_config"
    cfg.write_text("")
    assert Cluster.parse("localhost,h2", ssh_config=cfg).ssh_options() == ["-F", str(cfg)]


def test_our_node_classes_have_cluster_variants_and_others_are_refused():
    assert cluster_class(SaviSwitch) is ClusterSaviSwitch
    assert cluster_class(LegacySwitch) is ClusterLegacySwitch
    assert cluster_class(RoutedHost) is ClusterRoutedHost
    assert cluster_class(ClusterRoutedHost) is ClusterRoutedHost
    assert issubclass(ClusterSaviSwitch, SaviSwitch)  # same flows, fail mode, datapath
    with pytest.raises(ClusterError, match="no cluster variant"):
        cluster_class(object)


class FakeServerNode:
    """A remote node whose server commands are recorded, not run."""

    isRemote = True

    def __init__(self):
        self.commands = []

    def rcmd(self, cmd):
        self.commands.append(cmd)
        return ""


def test_a_remote_process_is_signalled_by_its_pid_on_its_server():
    client = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    node = FakeServerNode()
    proc = RemoteProcess(client, node, "/tmp/tmptcp-h1-abc.pid")
    try:
        assert proc.poll() is None and proc.pid == client.pid  # the rest is the client's
        proc.terminate()
        ((sh, dash_c, script),) = node.commands
        assert (sh, dash_c) == ("sh", "-c")
        assert "kill -15" in script and "/tmp/tmptcp-h1-abc.pid" in script
        assert script.startswith("'")  # quoted whole for the remote shell
    finally:
        client.kill()
    assert proc.wait(10) != 0
    assert "rm -f /tmp/tmptcp-h1-abc.pid" in node.commands[-1][2]
    proc.terminate()  # ended: nothing more is sent
    assert len(node.commands) == 2


def test_the_command_line_takes_a_cluster(tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("")
    args = parse(["campus", "--servers", "localhost,10.0.0.2", "--ssh-config", str(cfg)])
    assert args.cluster.servers == ("localhost", "10.0.0.2")
    assert args.cluster.ssh_config == cfg
    assert parse(["campus", "--local-server"]).local_server


@pytest.mark.parametrize(
    "argv",
    [
        ["campus", "--servers", "localhost"],
        ["campus", "--ssh-config", "x"],
        ["campus", "--servers", "localhost,h2", "--local-server"],
    ],
)
def test_the_command_line_refuses_bad_cluster_options(argv, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    "other_config, on",
    [
        ('{userspace-tso-enable="true"}', True),
        ("{userspace-tso-enable=true}", True),
        ('{userspace-tso-enable="false"}', False),
        ("{}", False),
        ("", False),
    ],
)
def test_the_tso_mode_is_read_from_other_config(other_config, on):
    assert tso_enabled(other_config) is on


def test_servers_agree_on_the_datapath_and_on_tso_only_where_it_applies():
    assert OvsMode.of("user", True) != OvsMode.of("user", False)
    assert OvsMode.of("kernel", True) == OvsMode.of("kernel", False)
    assert OvsMode.of("kernel", False) != OvsMode.of("user", False)
    assert str(OvsMode.of("user", True)) == "userspace datapath, userspace TSO on"
    assert str(OvsMode.of("kernel", True)) == "kernel datapath"
