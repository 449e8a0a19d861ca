"""What ``mn --custom`` is told before it builds anything (topologies/mn.py)."""

import socket
from contextlib import contextmanager

from topologies.mn import controller_specs, preflight, problem, remote_address, savi_address

CUSTOM = "topologies/dualhomed.py"


def test_controller_specs_in_both_spellings_and_repeated():
    argv = ["mn", "--custom", CUSTOM, "--controller", "remote,port=7", "--controller=ref"]
    assert controller_specs(argv) == ["remote,port=7", "ref"]
    assert controller_specs(["mn", "--topo", "dualhomed"]) == []


def test_remote_addresses():
    assert remote_address("remote") == ("127.0.0.1", 6653)
    assert remote_address("remote,ip=10.0.0.1,port=7000") == ("10.0.0.1", 7000)
    assert remote_address("ref") is None
    assert remote_address("remote,port=x") == ("127.0.0.1", 6653)  # mn would refuse it


def test_savi_addresses():
    assert savi_address("savi") == ("127.0.0.1", 6653)
    assert savi_address("savi,port=7000") == ("127.0.0.1", 7000)
    assert savi_address("remote,port=7000") is None


def test_mn_defaults_and_other_controllers_are_refused_with_what_to_run():
    for extra in ([], ["--controller", "ref"], ["--controller=ovsc"]):
        argv = ["mn", "--custom", CUSTOM, "--topo", "dualhomed", *extra]
        reason = problem(argv, "dualhomed", CUSTOM)
        assert f"sudo mn --custom {CUSTOM} --topo dualhomed --controller savi" in reason
        assert "--controller remote,port=P" in reason
        assert "sudo .venv/bin/python -m topologies dualhomed" in reason


@contextmanager
def listener():
    """A loopback port something listens on, for as long as the block runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_the_savi_controller_needs_its_port_free():
    with listener() as port:
        argv = ["mn", "--controller", f"savi,port={port}"]
        assert f"something already listens at 127.0.0.1:{port}" in problem(argv, "x", CUSTOM)
    assert problem(argv, "dualhomed", CUSTOM) is None


def test_a_remote_controller_must_listen():
    with listener() as port:
        argv = ["mn", "--controller", f"remote,port={port}"]
        assert problem(argv, "dualhomed", CUSTOM) is None
    assert f"nothing listens at 127.0.0.1:{port}" in problem(argv, "dualhomed", CUSTOM)


def test_other_loaders_and_mn_cleanup_are_left_alone():
    preflight("dualhomed", CUSTOM, argv=["python", "-m", "pytest"])  # no exit, no lock
    preflight("dualhomed", CUSTOM, argv=["/usr/bin/mn", "-c", "--custom", CUSTOM])
