"""The installer's platform knowledge (scripts/platform.sh) and the Vagrantfile."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def platform(tmp_path, os_release: str, call: str) -> subprocess.CompletedProcess:
    f = tmp_path / "os-release"
    f.write_text(os_release)
    script = f'. scripts/platform.sh; read -r id ver < <(detect_platform); {call} "$id" "$ver"'
    return subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"OS_RELEASE": str(f), "PATH": "/usr/bin:/bin"},
    )


DEBIAN = 'ID=debian\nVERSION_ID="12"\n'
UBUNTU = 'ID=ubuntu\nVERSION_ID="24.04"\n'
FEDORA = 'ID=fedora\nVERSION_ID="40"\n'


def test_detects_debian_and_ubuntu(tmp_path):
    assert platform(tmp_path, DEBIAN, "echo").stdout.split() == ["debian", "12"]
    assert platform(tmp_path, UBUNTU, "echo").stdout.split() == ["ubuntu", "24.04"]


def test_package_lists(tmp_path):
    deb = platform(tmp_path, DEBIAN, "platform_packages").stdout.split()
    ubu = platform(tmp_path, UBUNTU, "platform_packages").stdout.split()
    for needed in (
        "openvswitch-switch",
        "mininet",
        "dnsmasq-base",
        "udhcpc",
        "tshark",
        "python3-venv",
        "libnetfilter-queue-dev",
        "ruby",
        "clang",
        "libbpf-dev",
    ):
        assert needed in deb and needed in ubu
    assert "bpftool" in deb and "linux-tools-generic" in ubu  # the classifier's loader
    assert "chromium" in deb  # the live view's test browser
    # Ubuntu 24.04 ships Python 3.12 only: 3.11 comes from the deadsnakes archive.
    assert platform(tmp_path, DEBIAN, "platform_python").stdout.strip() == "/usr/bin/python3"
    assert platform(tmp_path, UBUNTU, "platform_python").stdout.strip() == "/usr/bin/python3.11"
    assert "python3.11-venv" in platform(tmp_path, UBUNTU, "platform_python_packages").stdout


def test_unknown_os_is_refused_with_what_to_install(tmp_path):
    assert platform(tmp_path, FEDORA, "platform_packages").returncode != 0
    msg = platform(tmp_path, FEDORA, "unsupported_message").stdout
    assert "fedora 40" in msg and "Open vSwitch" in msg and "Python 3.11" in msg


def test_installer_refuses_unknown_os_before_touching_anything(tmp_path):
    f = tmp_path / "os-release"
    f.write_text(FEDORA)
    r = subprocess.run(
        ["bash", "-c", "id() { echo 0; }; export -f id; scripts/install.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"OS_RELEASE": str(f), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 1 and "knows Debian 12 and Ubuntu 24.04" in r.stderr


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is installed by make install")
def test_vagrantfile_parses_and_checks_its_overrides():
    assert (
        subprocess.run(["ruby", "-c", "Vagrantfile"], cwd=REPO, capture_output=True).returncode == 0
    )
    # Evaluate it against a recording stand-in for Vagrant's configuration API.
    stub = """
    class Rec
      attr_reader :calls
      def initialize(path = "config", calls = []) ; @path, @calls = path, calls ; end
      def method_missing(name, *args, **kw, &blk)
        key = "#{@path}.#{name.to_s.chomp('=')}"
        @calls << [key, args.first, kw] if name.to_s.end_with?("=") || !args.empty?
        blk.call(Rec.new("#{key}", @calls), Rec.new("override", @calls)) if blk
        Rec.new(key, @calls)
      end
      def respond_to_missing?(*) = true
    end
    module Vagrant ; def self.configure(_v) ; r = Rec.new ; yield r ; puts r.calls.inspect ; end ; end
    load "Vagrantfile"
    """
    r = subprocess.run(["ruby", "-e", stub], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    calls = r.stdout
    for expected in (
        '"config.vm.box", "generic/ubuntu2404"',
        'config.vm.provider.cpus", 2',
        'config.vm.provider.memory", 4096',
        "scripts/install.sh",
        '"libvirt"',
        '"virtualbox"',
        ':type=>"rsync"',
    ):
        assert expected in calls
    bad = subprocess.run(
        ["ruby", "-e", stub],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"TESTBED_MEMORY": "512", "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode != 0 and "TESTBED_MEMORY" in bad.stderr
