"""The batched links' commands, without a network (the integration tests build them)."""

from types import SimpleNamespace

from topologies.links import veth_commands


class FakeNode:
    """What the batch reads of a Mininet node (hashable, as nodes are)."""

    def __init__(self, name, pid, in_namespace=True):
        self.name, self.pid, self.inNamespace = name, pid, in_namespace


def node(name, pid, in_namespace=True):
    return FakeNode(name, pid, in_namespace)


def test_every_pair_is_created_in_one_batch_and_the_far_ends_come_up_per_node():
    a, b, s1, r1 = node("a", 11), node("b", 12), node("s1", 1, False), node("r1", 13)
    links = [
        SimpleNamespace(
            pair=(a, "a-eth0", "00:00:00:00:00:01", s1, "s1-eth1", "00:00:00:00:00:02")
        ),
        SimpleNamespace(pair=(b, "b-eth0", None, s1, "s1-eth2", None)),
        SimpleNamespace(pair=(a, "a-eth1", None, r1, "r1-eth0", None)),
    ]
    create, far = veth_commands(links)
    assert create == [
        "link add name a-eth0 address 00:00:00:00:00:01 up netns 11 "
        "type veth peer name s1-eth1 address 00:00:00:00:00:02 netns 1",
        "link add name b-eth0 up netns 12 type veth peer name s1-eth2 netns 1",
        "link add name a-eth1 up netns 11 type veth peer name r1-eth0 netns 13",
    ]
    assert far == {
        s1: ["link set dev s1-eth1 up", "link set dev s1-eth2 up"],
        r1: ["link set dev r1-eth0 up"],
    }
