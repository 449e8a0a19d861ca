"""The controller's configuration file (TOML or JSON), validated into plain data.

Example (TOML)::

    max_bindings_per_port = 8      # claims beyond this per port are refused and counted
    probe_timeout = 0.5            # seconds an owner has to answer an FCFS probe
    trust_ttl = 30                 # seconds hosts may rely on a trust export

    [[switch]]
    dpid = 1                       # integer, or a hex string such as "0000000000000001"
    trusted_ports = [3]            # uplinks: no validation
    dhcp_server_ports = [2]        # where DHCP and DHCPv6 server messages may come from
    router_ports = [2]             # where IPv6 router advertisements and redirects may
                                   # come from (RA guard; uplinks pass them anyway)
    bundles = true                 # binding flows in OpenFlow bundles (false: one by one)

    [[static]]
    dpid = 1
    port = 1
    mac = "00:00:00:00:00:01"
    ip = "10.0.0.1"
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SwitchConfig:
    trusted_ports: frozenset[int] = frozenset()
    dhcp_server_ports: frozenset[int] = frozenset()
    router_ports: frozenset[int] = frozenset()
    bundles: bool = True  # binding flow-mods in OpenFlow bundles (controller/batches.py)


@dataclass(frozen=True)
class StaticBinding:
    dpid: int
    port: int
    mac: str
    ip: str


@dataclass(frozen=True)
class Config:
    max_bindings_per_port: int = 8
    probe_timeout: float = 0.5
    trust_ttl: float = 30.0
    switches: dict[int, SwitchConfig] = field(default_factory=dict)
    static: tuple[StaticBinding, ...] = ()

    def switch(self, dpid: int) -> SwitchConfig:
        return self.switches.get(dpid, SwitchConfig())


def load(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {e}") from e
    try:
        return parse(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def parse(raw: dict) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError("top level must be a table/object")
    known = {"max_bindings_per_port", "probe_timeout", "trust_ttl", "switch", "static"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}; known: {sorted(known)}")
    limit = _number(raw, "max_bindings_per_port", 8, int, minimum=1)
    probe = _number(raw, "probe_timeout", 0.5, float, minimum=0.01)
    ttl = _number(raw, "trust_ttl", 30.0, float, minimum=1)
    switches: dict[int, SwitchConfig] = {}
    for i, sw in enumerate(_list(raw, "switch")):
        where = f"switch[{i}]"
        _only(sw, {"dpid", "trusted_ports", "dhcp_server_ports", "router_ports", "bundles"}, where)
        dpid = parse_dpid(sw.get("dpid"), where)
        if dpid in switches:
            raise ConfigError(f"{where}: dpid {dpid:#x} configured twice")
        switches[dpid] = SwitchConfig(
            frozenset(_ports(sw, "trusted_ports", where)),
            frozenset(_ports(sw, "dhcp_server_ports", where)),
            frozenset(_ports(sw, "router_ports", where)),
            _flag(sw, "bundles", True, where),
        )
    static = []
    for i, st in enumerate(_list(raw, "static")):
        where = f"static[{i}]"
        _only(st, {"dpid", "port", "mac", "ip"}, where)
        static.append(static_binding(st, where))
    return Config(limit, probe, ttl, switches, tuple(static))


def static_binding(st: dict, where: str = "binding") -> StaticBinding:
    if not isinstance(st, dict):
        raise ConfigError(f"{where}: must be an object with dpid, port, mac, ip")
    missing = {"dpid", "port", "mac", "ip"} - set(st)
    if missing:
        raise ConfigError(f"{where}: missing {sorted(missing)}")
    port = st["port"]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 0xFFFFFF00:
        raise ConfigError(f"{where}: port must be a positive integer, not {port!r}")
    try:
        ip = str(ipaddress.ip_address(st["ip"]))
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e
    return StaticBinding(parse_dpid(st["dpid"], where), port, parse_mac(st["mac"], where), ip)


def parse_dpid(value, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: dpid missing or not a number: {value!r}")
    try:
        dpid = value if isinstance(value, int) else int(str(value).replace(":", ""), 16)
    except ValueError as e:
        raise ConfigError(f"{where}: dpid {value!r} is neither an integer nor hex") from e
    if not 0 <= dpid < 2**64:
        raise ConfigError(f"{where}: dpid {value!r} out of range")
    return dpid


def parse_mac(value, where: str) -> str:
    parts = str(value).lower().split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts
    ):
        raise ConfigError(f"{where}: not a MAC address: {value!r}")
    return ":".join(parts)


def _number(raw, key, default, kind, minimum):
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, not {value!r}")
    if kind is int and not float(value).is_integer():
        raise ConfigError(f"{key} must be an integer, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, not {value!r}")
    return kind(value)


def _flag(table: dict, key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _list(raw, key):
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{key} must be a list of tables/objects")
    return value


def _only(table: dict, allowed: set, where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")


def _ports(sw: dict, key: str, where: str) -> list[int]:
    ports = sw.get(key, [])
    if not isinstance(ports, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in ports
    ):
        raise ConfigError(f"{where}: {key} must be a list of positive port numbers")
    return ports
