"""Removing the agent's netfilter rules leaves nothing on the packets' path: not our
chains, and not iptables-nft's empty mangle tables, whose base chains every packet
would still traverse; a mangle table with someone else's rule stays. Real iptables-nft
and nft in a throwaway network namespace."""

import os
import subprocess

import pytest
from pyroute2 import netns

from hosts import firewall


@pytest.fixture
def namespace():
    name = f"tmptcp-fw-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(name: str, *cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", name, *cmd], capture_output=True, text=True, check=True
    ).stdout


def as_installed(name: str) -> None:
    """Our chains and jumps as install() makes them (its bpf match needs a loaded
    program; the chains' removal does not look at their rules)."""
    for tool in firewall.IPTABLES:
        for hook, chain in (("OUTPUT", firewall.CHAIN_OUT), ("INPUT", firewall.CHAIN_IN)):
            in_ns(name, tool, "-t", "mangle", "-N", chain)
            in_ns(name, tool, "-t", "mangle", "-A", chain, "-j", "RETURN")
            in_ns(name, tool, "-t", "mangle", "-A", hook, "-j", chain)
    in_ns(name, "nft", "add", "table", "inet", firewall.TABLE)


def remove_in(name: str) -> None:
    netns.pushns(name)  # the commands remove() runs inherit this thread's namespace
    try:
        firewall.remove()
    finally:
        netns.popns()


def test_removal_leaves_no_table_behind(namespace):
    as_installed(namespace)
    assert "table ip mangle" in in_ns(namespace, "nft", "list", "tables")
    remove_in(namespace)
    assert in_ns(namespace, "nft", "list", "tables").strip() == ""


def test_a_mangle_table_with_other_rules_stays_and_keeps_them(namespace):
    as_installed(namespace)
    in_ns(namespace, "iptables-nft", "-t", "mangle", "-A", "OUTPUT", "-p", "udp", "-j", "ACCEPT")
    remove_in(namespace)
    tables = in_ns(namespace, "nft", "list", "tables")
    assert "table ip mangle" in tables and "table ip6 mangle" not in tables
    assert "-A OUTPUT -p udp -j ACCEPT" in in_ns(namespace, "iptables-nft", "-t", "mangle", "-S")
    assert firewall.CHAIN_OUT not in in_ns(namespace, "iptables-nft", "-t", "mangle", "-S")
