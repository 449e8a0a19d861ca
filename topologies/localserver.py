"""A second server on this machine, for cluster mode without a second machine.

Mininet Cluster Edition needs servers it reaches by ssh, each with its own Open vSwitch.
``LocalServer`` makes one here that is separate where it matters: its own network
namespace (reached from the root namespace over a veth, the "wire" between the servers,
so the links between servers really are VXLAN tunnels over it), its own Open vSwitch
(ovsdb-server and ovs-vswitchd in a mount namespace where /run/openvswitch is a folder
of its own), and its own sshd on its address, which takes root logins with a key made
for this run only. ``ssh_config`` is the file the cluster's ssh commands use (``-F``):
that key, that server's host key pinned, nothing of root's own ~/.ssh touched.

Every process is started here and stopped by its PID; the namespace goes with them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from topologies.nodes import userspace_tso

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
SSHD = Path("/usr/sbin/sshd")


class LocalServerError(RuntimeError):
    pass


def _run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise LocalServerError(f"`{' '.join(cmd)}` failed: {(r.stderr or r.stdout).strip()}")
    return r


class LocalServer:
    """``with LocalServer(folder) as server:`` -- ``server.address`` is its IP address,
    ``server.ssh_config`` the ssh configuration file for root logins to it."""

    def __init__(
        self,
        folder: Path,
        netns: str = "tmptcp-srv2",
        address: str = "10.254.0.2",
        gateway: str = "10.254.0.1",
        prefix: int = 24,
        tso: bool | None = None,
    ):
        """``tso``: its OVS's userspace TSO; None: as this machine's OVS (a server of this
        kind; set otherwise only to see a mismatch refused)."""
        self.dir = Path(folder)
        self.tso = userspace_tso() if tso is None else tso
        self.netns, self.address, self.gateway, self.prefix = netns, address, gateway, prefix
        self.root_end = f"{netns[:10]}-r"
        self.sshd: subprocess.Popen | None = None
        self.ssh_config = self.dir / "ssh_config"
        self.ovs_run = self.dir / "ovs-run"

    def __enter__(self) -> LocalServer:
        for needed in (SSHD, SCHEMA):
            if not needed.exists():
                raise LocalServerError(
                    f"{needed} is missing: cluster mode on one machine needs openssh-server "
                    "and openvswitch-switch (scripts/install.sh installs them)"
                )
        if _netns_exists(self.netns):
            raise LocalServerError(
                f"network namespace {self.netns} exists already (another run's second "
                "server?); left alone"
            )
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ovs_run.mkdir(exist_ok=True)
        self._keys()
        _run("ip", "netns", "add", self.netns)
        veth = f"type veth peer name eth0 netns {self.netns}"  # eth0 there, not here
        _run("ip", "link", "add", self.root_end, *veth.split())
        _run("ip", "addr", "add", f"{self.gateway}/{self.prefix}", "dev", self.root_end)
        _run("ip", "link", "set", self.root_end, "up")
        inside = ["ip", "netns", "exec", self.netns]
        _run(*inside, "ip", "addr", "add", f"{self.address}/{self.prefix}", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        db = self.dir / "conf.db"
        db.unlink(missing_ok=True)
        _run("ovsdb-tool", "create", str(db), str(SCHEMA))
        d = self.dir
        script = (
            f"mount --bind {self.ovs_run} /run/openvswitch && "
            f"ovsdb-server {db} --remote=punix:/run/openvswitch/db.sock "
            f"--pidfile={d}/ovsdb-server.pid --detach --log-file={d}/ovsdb-server.log && "
            "ovs-vsctl --no-wait init && "
            # Its OVS's mode (this machine's unless told), set before ovs-vswitchd
            # starts: the only time it reads it.
            "ovs-vsctl --no-wait set Open_vSwitch . "
            f"other_config:userspace-tso-enable={'true' if self.tso else 'false'} && "
            f"ovs-vswitchd unix:/run/openvswitch/db.sock --pidfile={d}/ovs-vswitchd.pid "
            f"--detach --log-file={d}/ovs-vswitchd.log && "
            f"exec {SSHD} -D -f {d}/sshd_config -E {d}/sshd.log"
        )
        self.sshd = subprocess.Popen(
            [*inside, "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=open(d / "server.log", "ab"),
            start_new_session=True,
        )
        self._wait_for_ssh()

    def _keys(self) -> None:
        d = self.dir
        for key in ("host_key", "client_key"):
            for f in (d / key, d / f"{key}.pub"):
                f.unlink(missing_ok=True)
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tmptcp", "-f", str(d / key))
        (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
        host_key = (d / "host_key.pub").read_text().split()[:2]
        (d / "known_hosts").write_text(f"{self.address} {' '.join(host_key)}\n")
        (d / "sshd_config").write_text(
            f"ListenAddress {self.address}:22\n"
            f"HostKey {d}/host_key\n"
            f"PidFile {d}/sshd.pid\n"
            f"AuthorizedKeysFile {d}/authorized_keys\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nUseDNS no\nStrictModes no\n"
            # every remote node is an ssh session of its own
            "MaxStartups 200:30:400\nMaxSessions 400\n"
        )
        self.ssh_config.write_text(
            f"Host {self.address}\n"
            f"  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n"
            "  ConnectTimeout 10\n"
        )

    def _wait_for_ssh(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise LocalServerError(
                    f"the second server's start ended ({self.sshd.returncode}); see "
                    f"{self.dir / 'server.log'} and {self.dir / 'sshd.log'}"
                )
            login = ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-n"]
            r = subprocess.run(
                [*login, f"root@{self.address}", "ovs-vsctl --timeout=2 show"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise LocalServerError(f"no ssh login to {self.address} within {timeout}s: {r.stderr}")

    def stop(self) -> None:
        # Whatever still runs in the server's namespace was started through it (ssh
        # sessions and the nodes' shells left by a run that did not stop): ours to end.
        if _netns_exists(self.netns):
            listed = subprocess.run(
                ["ip", "netns", "pids", self.netns], capture_output=True, text=True
            )
            pids = listed.stdout.split()
            for pid in pids:
                if self.sshd is None or int(pid) != self.sshd.pid:
                    _terminate(int(pid), timeout=2)
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait(10)
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pidfile = self.dir / f"{name}.pid"
            if pidfile.exists():
                _terminate(int(pidfile.read_text().split()[0]))
                pidfile.unlink(missing_ok=True)
        if _netns_exists(self.netns):
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.root_end], capture_output=True)


def _terminate(pid: int, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; a process already gone is fine."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()
