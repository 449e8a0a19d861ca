"""Print a host's live TPBT, as the draft's Table 1 per connection or as JSON.

    python -m hosts.tpbt_show --state FILE [--json]

FILE is the agent's ``--state`` file (the testbed builder puts it in the run folder as
``<host>.tpbt.json``).
"""

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hosts.tpbt_show", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    ap.add_argument(
        "--state", required=True, help="the agent's state file (the builder's RUN/HOST.tpbt.json)"
    )
    ap.add_argument("--json", action="store_true", help="machine-readable entries")
    args = ap.parse_args(argv)
    try:
        with open(args.state) as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        print(f"tpbt_show: cannot read {args.state}: {e}", file=sys.stderr)
        return 1
    age = time.time() - state["time"]
    if args.json:
        print(json.dumps({"age": round(age, 3), "entries": state["entries"]}, indent=2))
    else:
        print(state["table"])
        if age > 2:
            print(f"(written {age:.0f} s ago: is the agent running?)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
