"""Replay, from captures taken at the MPTCP sender, the data-level window the sender's
kernel believes in, and check it against the window the receiver announced.

    python3 window_replay.py CAPTURE_DIR      # *.pcap taken at the sender, one per interface

Why: in the stalled runs of repro.sh the receiver drops data as beyond its data-level
window (MPTcpExtNoDSSInWindow). Linux (net/mptcp/options.c, ack_update_msk) takes the
sender's right edge as ``data_ack + tcp_sk(ssk)->snd_wnd``: the data ACK of the segment
just received, plus the window of the *subflow* it came on as TCP last accepted it. TCP
accepts a window only under RFC 793's rule (tcp_may_update_window in
net/ipv4/tcp_input.c): the ACK acknowledges new subflow data, or carries newer subflow
data, or (same sequence) a larger or zero window. An ACK on a subflow with nothing new
to acknowledge and a smaller window is not taken; its newer data ACK is, with the old,
larger window: the edge runs ahead of what the receiver announced.

The replay follows both: the largest right edge the receiver announced (data ACK + its
window) and the edge that rule gives the sender, and counts new data segments sent past
the first and within the second. The core (``replay``) is pure; ``read_captures`` runs
tshark. Captures must include the subflows' handshakes (window scaling) and be complete:
missing ACKs look like overshoots. tcpdump loses the tail of a capture when stopped (the
packets still in the kernel's ring block; ``--immediate-mode`` shortens that), and each
interface's by a different amount, so the replay stops where the shortest capture ends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SEQ_SPACE = 1 << 32


def after32(a: int, b: int) -> bool:
    """TCP's serial-number comparison: a is later than b (modulo 2**32)."""
    return 0 < (a - b) % SEQ_SPACE < SEQ_SPACE // 2


def expand64(last: int | None, value: int, is_64bit: bool) -> int:
    """A 32-bit data sequence number or data ACK as the 64-bit one nearest ``last``."""
    if is_64bit or last is None:
        return value
    delta = (value - last) % SEQ_SPACE
    return last + delta if delta < SEQ_SPACE // 2 else last + delta - SEQ_SPACE


@dataclass(frozen=True)
class Segment:
    """One captured TCP segment of the connection, reduced to what the replay needs."""

    time: float
    subflow: tuple[str, int]  # (capture file, tcp stream): one subflow
    from_receiver: bool
    seq: int  # subflow-level, relative (first data byte 1)
    ack: int
    length: int
    window: int  # scaled (the capture holds the handshake)
    syn: bool = False
    data_ack: int | None = None
    data_ack_64bit: bool = True
    dsn: int | None = None  # DSS mapping: data sequence number ...
    dsn_64bit: bool = True
    ssn: int | None = None  # ... for this relative subflow sequence number


@dataclass(frozen=True)
class EdgeAhead:
    """A receiver ACK whose data ACK, with its subflow's stale window, put the sender's
    edge past every edge the receiver had announced."""

    time: float
    subflow: tuple[str, int]
    window: int  # the window this ACK announced
    stale_window: int  # the subflow's window the sender kept
    ahead_by: int


@dataclass
class Replay:
    until: float | None = None  # the last moment every capture covers
    new_data_segments: int = 0
    past_announced: int = 0  # new data ending past every edge the receiver announced
    within_kernel_edge: int = 0  # ... of them, within the edge the sender computed
    edges_ahead: list[EdgeAhead] = field(default_factory=list)
    largest_overshoot: int = 0

    def summary(self) -> str:
        worst = max((e.ahead_by for e in self.edges_ahead), default=0)
        span = "" if self.until is None else " (to the end of the shortest capture)"
        return (
            f"replay{span}: {self.new_data_segments} new data segments; {self.past_announced} ended"
            f" past every edge the receiver had announced (by up to {self.largest_overshoot}"
            f" bytes), {self.within_kernel_edge} of them within the edge the sender computes"
            f" from data ACK + subflow window; {len(self.edges_ahead)} ACKs put that edge"
            f" ahead (by up to {worst} bytes)"
        )


@dataclass
class _SubflowState:
    una: int
    wl1: int
    window: int


def replay(segments: Iterable[Segment], until: float | None = None) -> Replay:
    """Follow the sender's and the receiver's data-level edges through ``segments``
    (in capture order, up to ``until`` if given) and count what the sender sent past the
    receiver's."""
    result = Replay(until=until)
    subflows: dict[tuple[str, int], _SubflowState] = {}
    mappings: dict[tuple[str, int], tuple[int, int]] = {}
    announced = kernel = sent_end = last_data_seq = None
    for seg in segments:
        if until is not None and seg.time > until:
            break
        if seg.syn:
            continue
        if seg.from_receiver:
            state = subflows.get(seg.subflow)
            if state is None:
                state = subflows[seg.subflow] = _SubflowState(seg.ack, seg.seq, seg.window)
            else:
                # tcp_may_update_window(): the only ACKs whose window TCP takes.
                if (
                    after32(seg.ack, state.una)
                    or after32(seg.seq, state.wl1)
                    or (seg.seq == state.wl1 and (seg.window > state.window or seg.window == 0))
                ):
                    state.window, state.wl1 = seg.window, seg.seq
                if after32(seg.ack, state.una):
                    state.una = seg.ack
            if seg.data_ack is None:
                continue
            data_ack = expand64(last_data_seq, seg.data_ack, seg.data_ack_64bit)
            edge = data_ack + seg.window
            announced = edge if announced is None else max(announced, edge)
            candidate = data_ack + state.window
            if candidate > announced and (kernel is None or candidate > kernel):
                ahead = EdgeAhead(
                    seg.time, seg.subflow, seg.window, state.window, candidate - announced
                )
                result.edges_ahead.append(ahead)
            kernel = candidate if kernel is None else max(kernel, candidate)
            continue
        if seg.dsn is not None and seg.ssn is not None:
            dsn = expand64(last_data_seq, seg.dsn, seg.dsn_64bit)
            mappings[seg.subflow] = (dsn, seg.ssn)
            last_data_seq = dsn
        if seg.length == 0 or seg.subflow not in mappings or announced is None:
            continue
        dsn, ssn = mappings[seg.subflow]
        end = dsn + (seg.seq - ssn) % SEQ_SPACE + seg.length
        if sent_end is not None and end <= sent_end:
            continue  # a retransmission: the receiver took or announced it before
        sent_end = end
        result.new_data_segments += 1
        if end > announced:
            result.past_announced += 1
            result.largest_overshoot = max(result.largest_overshoot, end - announced)
            if kernel is not None and end <= kernel:
                result.within_kernel_edge += 1
    return result


TSHARK_FIELDS = (
    "frame.time_epoch",
    "ip.src",
    "tcp.stream",
    "tcp.seq",
    "tcp.ack",
    "tcp.len",
    "tcp.window_size",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.options.mptcp.rawdataack",
    "tcp.options.mptcp.dataack8.flag",
    "tcp.options.mptcp.rawdataseqno",
    "tcp.options.mptcp.dseqn8.flag",
    "tcp.options.mptcp.subflowseqno",
)


def _flag(text: str) -> bool:
    return text in ("1", "True")


def parse_fields(capture: str, lines: Iterable[str]) -> list[Segment]:
    """Segments from tshark's ``-T fields -E separator=|`` lines (TSHARK_FIELDS) of one
    capture. The host that sent a subflow's SYN is the sender; segments of a subflow
    whose handshake is not in the capture are left out (their windows are unscaled)."""
    segments = []
    opener: dict[int, str] = {}
    for line in lines:
        f = line.split("|")
        if len(f) != len(TSHARK_FIELDS) or not f[3]:
            continue
        stream, syn = int(f[2]), _flag(f[7])
        if syn and not _flag(f[8]):
            opener[stream] = f[1]
        if stream not in opener:
            continue
        segments.append(
            Segment(
                time=float(f[0]),
                subflow=(capture, stream),
                from_receiver=f[1] != opener[stream],
                seq=int(f[3]),
                ack=int(f[4] or 0),
                length=int(f[5] or 0),
                window=int(f[6] or 0),
                syn=syn,
                data_ack=int(f[9]) if f[9] else None,
                data_ack_64bit=_flag(f[10]),
                dsn=int(f[11]) if f[11] else None,
                dsn_64bit=_flag(f[12]),
                ssn=int(f[13]) if f[13] else None,
            )
        )
    return segments


def covered_until(segments: Iterable[Segment]) -> float | None:
    """The last moment every capture covers: the earliest of their last segments."""
    last: dict[str, float] = {}
    for seg in segments:
        last[seg.subflow[0]] = max(seg.time, last.get(seg.subflow[0], seg.time))
    return min(last.values(), default=None)


def read_captures(folder: Path) -> list[Segment]:
    """Every segment of every ``*.pcap`` in ``folder`` (one per sender interface), in
    time order."""
    segments: list[Segment] = []
    for pcap in sorted(folder.glob("*.pcap")):
        cmd = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=|"]
        cmd += ["-E", "occurrence=f"]
        for name in TSHARK_FIELDS:
            cmd += ["-e", name]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            # A capture cut short still reads up to the cut; say so, since what is
            # missing can look like overshoots.
            said = [x for x in done.stderr.splitlines() if "could be dangerous" not in x]
            print(f"window_replay.py: {pcap.name}: {' '.join(said)}", file=sys.stderr)
        segments += parse_fields(pcap.name, done.stdout.splitlines())
    return sorted(segments, key=lambda s: s.time)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: window_replay.py CAPTURE_DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    if not any(folder.glob("*.pcap")):
        print(f"window_replay.py: no .pcap in {folder}", file=sys.stderr)
        return 2
    try:
        segments = read_captures(folder)
    except OSError as e:
        print(f"window_replay.py: tshark could not read {folder}: {e}", file=sys.stderr)
        return 1
    print(replay(segments, covered_until(segments)).summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
