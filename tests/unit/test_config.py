"""Config files and the launcher: good ones load, bad ones give one clear line."""

import subprocess
import sys

import pytest

from controller.config import Config, ConfigError, load, parse

GOOD = """
max_bindings_per_port = 4
probe_timeout = 0.2
[[switch]]
dpid = "000000000000000a"
trusted_ports = [3]
dhcp_server_ports = [2]
router_ports = [2, 4]
bundles = false
[[static]]
dpid = 10
port = 1
mac = "00:00:00:00:00:AA"
ip = "2001:db8::0001"
"""


def test_good_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(GOOD)
    c = load(p)
    assert c.max_bindings_per_port == 4 and c.probe_timeout == 0.2
    assert c.switch(10).trusted_ports == {3} and c.switch(10).dhcp_server_ports == {2}
    assert c.switch(10).router_ports == {2, 4}
    assert c.switch(99).trusted_ports == frozenset()  # unconfigured: all access ports
    assert not c.switch(10).bundles and c.switch(99).bundles  # bundles unless told not to
    (st,) = c.static
    assert (st.dpid, st.mac, st.ip) == (10, "00:00:00:00:00:aa", "2001:db8::1")


def test_no_config_means_defaults():
    assert load(None) == Config()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"max_bindings_per_port": 0}, "max_bindings_per_port must be >= 1"),
        ({"max_bindings_per_port": 2.5}, "must be an integer"),
        ({"probe_timeout": "fast"}, "must be a number"),
        ({"colour": 1}, "unknown keys"),
        ({"switch": [{"dpid": "xyz"}]}, "neither an integer nor hex"),
        ({"switch": [{"dpid": 1}, {"dpid": 1}]}, "configured twice"),
        ({"switch": [{"dpid": 1, "trusted_ports": [0]}]}, "positive port numbers"),
        ({"switch": [{"dpid": 1, "router_ports": ["r1"]}]}, "router_ports must be a list"),
        ({"switch": [{"dpid": 1, "uplinks": [1]}]}, "unknown keys"),
        ({"switch": [{"dpid": 1, "bundles": "no"}]}, r"switch\[0\]: bundles must be true or false"),
        ({"switch": [{"dpid": 1, "bundles": 0}]}, "bundles must be true or false, not 0"),
        ({"static": [{"dpid": 1, "port": 1, "mac": "zz", "ip": "10.0.0.1"}]}, "not a MAC"),
        (
            {"static": [{"dpid": 1, "port": 1, "mac": "00:00:00:00:00:01", "ip": "10.0.0.300"}]},
            "does not appear to be an IPv4 or IPv6",
        ),
        ({"static": [{"dpid": 1}]}, "missing"),
    ],
)
def test_bad_configs(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse(raw)


def test_unreadable_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not valid json"):
        load(bad)


def test_launcher_reports_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("max_bindings_per_port = -1\n")
    r = subprocess.run(
        [sys.executable, "-m", "controller", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"controller: {bad}: max_bindings_per_port must be >= 1, not -1"
    ]


def launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args], capture_output=True, text=True, timeout=60
    )


def test_launcher_rejects_a_key_that_is_not_ed25519_and_a_short_token(tmp_path):
    key, token = tmp_path / "k", tmp_path / "t"
    key.write_text("0" * 64)  # the old shared HMAC key
    token.write_text("short")
    r = launch("--trust-key-file", str(key))
    assert r.returncode == 2 and "not a PEM private key" in r.stderr
    r = launch("--api-token-file", str(token))
    assert r.returncode == 2 and "shorter than 16 characters" in r.stderr
