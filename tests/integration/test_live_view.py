"""The live view (GET /savi/view) in headless Chromium, on a running testbed: it shows the
bindings, the drop counters, the trust export and each agent's TPBT, and follows changes
by itself (a binding removed through the API disappears from the page)."""

import re
import shutil
import subprocess

import pytest

from tests.integration.tools import wait_until
from tests.mptcp.helpers import managed_transfer
from topologies.builder import Testbed
from topologies.dualhomed import DualHomedTopo
from topologies.single import SingleSwitchTopo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium (Debian: make install)")


def page(url: str, tmp_path, screenshot: str | None = None) -> str:
    """The page's DOM after its scripts ran for a while (virtual time: 3 s)."""
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=3000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ]
    if screenshot:
        cmd += [f"--screenshot={tmp_path / screenshot}", "--window-size=1200,1400"]
    else:
        cmd += ["--dump-dom"]
    r = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def rows(dom: str, table: str) -> list[str]:
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    return re.findall(r'<tr data-key="([^"]+)">', body)


def test_the_live_view_shows_the_testbed_and_follows_it(tmp_path):
    with Testbed(SingleSwitchTopo(hosts=3), log_dir=str(tmp_path / "tb")) as tb:
        assert tb.net.pingAll(timeout=2) == 0.0
        h1 = tb.net["h1"]
        h1.cmd("ip addr add 10.0.0.99/24 dev h1-eth0 && arping -c1 -U -I h1-eth0 10.0.0.99")
        tb.net["h3"].cmd("ip addr add 10.0.0.2/32 dev h3-eth0; arping -c2 -U -I h3-eth0 10.0.0.2")
        wait_until(
            lambda: any(s["rejected_claims"] for s in tb.get("/savi/stats")),
            10,
            "h3's claim on h2's address to be refused",
        )
        dom = page(tb.view_url, tmp_path)
        shown = rows(dom, "bindings")
        for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.99"):
            assert ip in shown, shown
        assert "1:3" in rows(dom, "stats")  # h3's port, with its rejected claim
        assert set(rows(dom, "trust")) >= {"10.0.0.1", "10.0.0.99"}
        assert "no agent runs" in dom
        page(tb.view_url, tmp_path, screenshot="view.png")
        assert (tmp_path / "view.png").stat().st_size > 10_000
        status, _ = tb.request("DELETE", "/savi/bindings", {"ip": "10.0.0.99"})
        assert status == 200
        shown = rows(page(tb.view_url, tmp_path), "bindings")
        assert "10.0.0.99" not in shown and "10.0.0.1" in shown


def test_the_live_view_shows_each_agents_tpbt(tmp_path):
    with Testbed(DualHomedTopo(), log_dir=str(tmp_path / "tb")) as tb:
        for src, dst in (("10.1.0.10", "10.3.0.20"), ("10.2.0.10", "10.4.0.20")):
            tb.net["a"].cmd(f"ping -c1 -W2 -I {src} {dst}")
        tb.net["b"].cmd("ping -c1 -W2 10.1.0.10")
        tb.start_agents()
        xfer = managed_transfer(tb, seconds=3)
        dom = page(tb.view_url, tmp_path)
        for host in ("a", "b"):
            assert f'data-key="{host}"' in dom
        assert re.search(r"Sf\(10\.1\.0\.10,10\.3\.0\.20\)\s+True\s+True", dom), dom[-3000:]
        assert "own trusted addresses: 10.1.0.10" in dom
        xfer.results()
