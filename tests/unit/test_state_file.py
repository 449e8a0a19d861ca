"""The agent's state file is written by a thread of its own (hosts/state_file.py)."""

import json

from experiments.harness import wait_until
from hosts.state_file import StateWriter


def test_the_newest_state_is_written_whole_and_close_writes_what_is_pending(tmp_path):
    path = tmp_path / "a.tpbt.json"
    writer = StateWriter(str(path))
    writer.submit(json.dumps({"time": 1}))
    wait_until(lambda: path.exists() and json.loads(path.read_text())["time"] == 1, 5, "a write")
    with writer.cond:  # the thread cannot take a state while we hold this: the newest wins
        writer.pending = json.dumps({"time": 2})
        writer.pending = json.dumps({"time": 3})
        writer.cond.notify()
    writer.close()
    assert json.loads(path.read_text()) == {"time": 3}
    assert not (tmp_path / "a.tpbt.json.tmp").exists()  # renamed into place
    assert not writer.thread.is_alive()


def test_a_state_that_cannot_be_written_is_counted_and_the_writer_goes_on(tmp_path):
    writer = StateWriter(str(tmp_path / "gone" / "a.tpbt.json"))
    writer.submit("{}")
    wait_until(lambda: writer.errors == 1, 5, "the failed write to be counted")
    (tmp_path / "gone").mkdir()
    writer.submit('{"time": 4}')
    wait_until(lambda: writer.written == 1, 5, "the next write")
    writer.close()
    assert json.loads((tmp_path / "gone" / "a.tpbt.json").read_text()) == {"time": 4}
