"""tools/mptcp-stall/window_replay.py: the sender's data-level edge as Linux computes it
(data ACK + the subflow's window as TCP last accepted it) against the edge the receiver
announced, on hand-made segments."""

import importlib.util
import sys

import pytest

from tests.integration.tools import REPO

_spec = importlib.util.spec_from_file_location(
    "window_replay", REPO / "tools" / "mptcp-stall" / "window_replay.py"
)
wr = importlib.util.module_from_spec(_spec)
sys.modules["window_replay"] = wr  # dataclasses look their module up there
_spec.loader.exec_module(wr)

ONE, TWO = ("a1.pcap", 0), ("a2.pcap", 0)


def ack(subflow, *, ack, window, data_ack, seq=1, t=0.0):
    return wr.Segment(t, subflow, True, seq, ack, 0, window, data_ack=data_ack)


def data(subflow, *, seq, length, dsn=None, ssn=None, t=0.0):
    return wr.Segment(t, subflow, False, seq, 1, length, 0, dsn=dsn, ssn=ssn)


def opening():
    """Both subflows carried data; the receiver announced edges 1,400 and 1,500."""
    return [
        ack(TWO, ack=101, window=800, data_ack=600),  # TWO: window 800 taken
        ack(ONE, ack=201, window=500, data_ack=1000),  # edge 1,500
    ]


def test_a_sender_that_stays_within_the_announced_edge_is_not_counted():
    r = wr.replay([*opening(), data(ONE, seq=201, length=500, dsn=1000, ssn=201)])
    assert (r.new_data_segments, r.past_announced, r.within_kernel_edge) == (1, 0, 0)


def test_a_smaller_window_on_a_subflow_with_nothing_new_to_acknowledge_leaves_the_edge_ahead():
    # TWO has nothing new to acknowledge (same ACK, same sequence): TCP keeps its window
    # of 800 and the data ACK of 1,000 comes with it, an edge of 1,800 against 1,300
    # announced here and 1,500 before.
    segments = [*opening(), ack(TWO, ack=101, window=300, data_ack=1000)]
    r = wr.replay([*segments, data(ONE, seq=201, length=700, dsn=1000, ssn=201)])
    assert [(e.subflow, e.window, e.stale_window, e.ahead_by) for e in r.edges_ahead] == [
        (TWO, 300, 800, 300)
    ]
    assert (r.past_announced, r.within_kernel_edge, r.largest_overshoot) == (1, 1, 200)


def test_beyond_even_the_senders_edge_is_counted_but_not_explained():
    segments = [*opening(), ack(TWO, ack=101, window=300, data_ack=1000)]
    r = wr.replay([*segments, data(ONE, seq=201, length=900, dsn=1000, ssn=201)])
    assert (r.past_announced, r.within_kernel_edge) == (1, 0)


@pytest.mark.parametrize(
    "update",
    [
        ack(TWO, ack=151, window=300, data_ack=1000),  # acknowledges new subflow data
        ack(TWO, ack=101, window=300, data_ack=1000, seq=2),  # carries newer subflow data
    ],
    ids=["new-subflow-ack", "newer-subflow-seq"],
)
def test_an_ack_tcp_takes_the_window_of_leaves_no_edge_ahead(update):
    r = wr.replay([*opening(), update, data(ONE, seq=201, length=700, dsn=1000, ssn=201)])
    assert r.edges_ahead == []
    assert (r.past_announced, r.within_kernel_edge) == (1, 0)


def test_a_larger_window_is_taken_even_without_anything_new():
    r = wr.replay([*opening(), ack(TWO, ack=101, window=900, data_ack=1000)])
    assert r.edges_ahead == []


def test_retransmissions_and_segments_without_a_mapping_are_not_new_data():
    segments = [
        *opening(),
        data(ONE, seq=201, length=400, dsn=1000, ssn=201),
        data(ONE, seq=201, length=400, dsn=1000, ssn=201),  # the same range again
        data(TWO, seq=101, length=100),  # no mapping seen on TWO yet
        data(ONE, seq=601, length=100),  # the rest of ONE's mapping: 1,400-1,500
    ]
    r = wr.replay(segments)
    assert (r.new_data_segments, r.past_announced) == (2, 0)


def test_subflow_sequence_numbers_wrap_as_tcps_do():
    assert wr.after32(5, 2**32 - 5) and not wr.after32(2**32 - 5, 5)
    near_wrap = 2**32 - 100
    segments = [
        ack(ONE, ack=near_wrap, window=500, data_ack=1000, seq=near_wrap),
        ack(ONE, ack=20, window=300, data_ack=1400, seq=near_wrap),  # past the wrap: new
    ]
    assert wr.replay(segments).edges_ahead == []


def test_a_32_bit_data_sequence_number_expands_next_to_the_last_one():
    assert wr.expand64(2**32 - 10, 5, is_64bit=False) == 2**32 + 5
    assert wr.expand64(2**32 + 5, 2**32 - 10 & 0xFFFFFFFF, is_64bit=False) == 2**32 - 10
    assert wr.expand64(None, 7, is_64bit=False) == 7
    assert wr.expand64(123, 2**40, is_64bit=True) == 2**40


def fields(t, src, stream, seq, ack, length, win, syn, ackflag, dack="", dsn="", ssn=""):
    d8 = "1" if dack else ""
    s8 = "1" if dsn else ""
    return "|".join(
        map(str, [t, src, stream, seq, ack, length, win, syn, ackflag, dack, d8, dsn, s8, ssn])
    )


def test_the_host_that_opened_a_subflow_is_the_sender_and_half_seen_subflows_are_left_out():
    lines = [
        fields(0.5, "10.0.0.2", 1, 5, 5, 0, 100, "0", "1", dack=9),  # stream 1: no SYN seen
        fields(1.0, "10.0.0.1", 0, 0, 0, 0, 64240, "1", "0"),  # a opens stream 0
        fields(1.1, "10.0.0.2", 0, 0, 1, 0, 65160, "1", "1"),  # b's SYN/ACK
        fields(1.2, "10.0.0.1", 0, 1, 1, 1000, 500, "0", "1", dsn=77, ssn=1),
        fields(1.3, "10.0.0.2", 0, 1, 1001, 0, 4000, "0", "1", dack=1077),
        "not|enough|fields",
        fields(1.4, "10.0.0.2", 0, "", 1001, 0, 4000, "0", "1"),  # no TCP sequence
    ]
    segments = wr.parse_fields("a1.pcap", lines)
    assert [(s.time, s.from_receiver, s.syn) for s in segments] == [
        (1.0, False, True),
        (1.1, True, True),
        (1.2, False, False),
        (1.3, True, False),
    ]
    assert (segments[2].dsn, segments[2].ssn, segments[2].dsn_64bit) == (77, 1, True)
    assert (segments[3].data_ack, segments[3].window) == (1077, 4000)
    r = wr.replay(segments)
    assert (r.new_data_segments, r.past_announced) == (0, 0)  # no edge announced before it


def test_the_command_refuses_a_folder_without_captures(tmp_path, capsys):
    assert wr.main([str(tmp_path)]) == 2
    assert "no .pcap" in capsys.readouterr().err
    assert wr.main([]) == 2


def test_the_replay_stops_where_the_shortest_capture_ends():
    # TWO's capture ends at t=1 (tcpdump lost its tail): ONE's data after that, past the
    # edges TWO's missing ACKs would have announced, is not judged.
    segments = [
        ack(TWO, ack=101, window=800, data_ack=600, t=0.5),
        ack(ONE, ack=201, window=500, data_ack=1000, t=1.0),
        ack(TWO, ack=102, window=300, data_ack=1000, seq=1, t=1.0),
        data(ONE, seq=201, length=900, dsn=1000, ssn=201, t=2.0),
    ]
    assert wr.covered_until(segments) == 1.0
    assert wr.covered_until([]) is None
    r = wr.replay(segments, until=wr.covered_until(segments))
    assert (r.new_data_segments, r.past_announced) == (0, 0)
    assert wr.replay(segments).past_announced == 1
    assert r.summary().startswith("replay (to the end of the shortest capture): 0 new data")
