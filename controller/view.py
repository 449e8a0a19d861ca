"""The live view (GET /savi/view): a page that reads the controller's JSON every half
second, and the hosts' agents as their state files say (GET /savi/view/agents).

The agents write their state (TPBT, connections, counters) to files in a folder the
builder gives both them and the controller (``--agent-state-dir``); the controller only
reads those files, so the view needs no new way into the hosts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PAGE = (Path(__file__).with_name("view.html")).read_bytes()
STATE_FILE = re.compile(r"^([A-Za-z0-9_-]{1,32})\.tpbt\.json$")
MAX_STATE_BYTES = 4 << 20  # a state file larger than this is not an agent's


def read_agents(folder: str | None) -> dict:
    """host -> what its agent's state file says (table, connections, own trusted
    addresses, counters), or an ``error`` when the file cannot be read."""
    if not folder:
        return {}
    out = {}
    for path in sorted(Path(folder).glob("*.tpbt.json")):
        name = STATE_FILE.match(path.name)
        if name is None:
            continue
        try:
            if path.stat().st_size > MAX_STATE_BYTES:
                raise ValueError("too large")
            state = json.loads(path.read_text())
            out[name.group(1)] = {
                "table": str(state["table"]),
                "connections": int(state["connections"]),
                "local_trusted": [str(a) for a in state["local_trusted"]],
                "counters": dict(state["counters"]),
                "time": float(state["time"]),
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            out[name.group(1)] = {"error": f"state file unreadable: {e}"}
    return out
