"""The app runs on os-ken (Ryu's maintained fork): same pipeline from the same code."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_app_drives_os_ken_datapath():
    # A fresh interpreter: the framework is chosen at import time (SAVI_FRAMEWORK).
    script = textwrap.dedent(
        """
        import os_ken.ofproto.ofproto_v1_3_parser as parser
        from controller import compat
        assert compat.FRAMEWORK == "os_ken" and compat.App.__module__.startswith("os_ken")
        from controller.savi_app import SaviApp
        from tests.fakes import FakeDatapath, features, packet_in, port_desc
        from tests.unit import frames
        app = SaviApp()
        dp = FakeDatapath(1, framework=compat)
        app.switch_features(features(dp))
        app.port_desc(port_desc(dp, [1, 2]))
        app.packet_in(packet_in(dp, 1, frames.arp("00:00:00:00:00:01", "10.0.0.1")))
        assert all(type(m).__module__ == parser.__name__ for m in dp.sent)
        allowed = dp.table.lookup(in_port=1, eth_src="00:00:00:00:00:01", eth_type=0x0800,
                                  ipv4_src="10.0.0.1")
        spoofed = dp.table.lookup(in_port=2, eth_src="00:00:00:00:00:02", eth_type=0x0800,
                                  ipv4_src="10.0.0.1")
        print(allowed, spoofed, len(dp.packet_outs()))
        """
    )
    env = {"SAVI_FRAMEWORK": "os_ken", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["normal", "drop", "1"]
