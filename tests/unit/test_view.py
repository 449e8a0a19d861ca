"""What the live view reads of the agents (controller/view.py): their state files, and
nothing that is not one."""

import json

from controller.view import PAGE, read_agents


def state(table: str = "Connection 1\n...", trusted=("10.1.0.10",)) -> str:
    return json.dumps(
        {
            "time": 1.0,
            "table": table,
            "connections": 1,
            "local_trusted": list(trusted),
            "counters": {"addr_trust_sent": 3},
        }
    )


def test_agents_are_read_from_their_state_files(tmp_path):
    (tmp_path / "a.tpbt.json").write_text(state())
    (tmp_path / "b.tpbt.json").write_text("{not json")
    (tmp_path / "c.tpbt.json").write_text(json.dumps({"table": "x"}))  # fields missing
    (tmp_path / "a.tpbt.json.tmp").write_text(state())  # the agent's half-written file
    (tmp_path / "bad name!.tpbt.json").write_text(state())
    agents = read_agents(str(tmp_path))
    assert set(agents) == {"a", "b", "c"}
    assert agents["a"]["local_trusted"] == ["10.1.0.10"]
    assert agents["a"]["counters"] == {"addr_trust_sent": 3}
    assert "unreadable" in agents["b"]["error"] and "unreadable" in agents["c"]["error"]


def test_no_folder_no_agents(tmp_path):
    assert read_agents(None) == {}
    assert read_agents(str(tmp_path / "missing")) == {}


def test_the_page_reads_every_endpoint():
    for path in (b"/savi/bindings", b"/savi/stats", b"/savi/trust", b"/savi/view/agents"):
        assert path in PAGE
