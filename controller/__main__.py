"""``python -m controller``: start the SAVI app under Ryu (OpenFlow 1.3).

Options are checked here, before Ryu starts, so a bad config file or port is a one-line
error and not a traceback from inside the framework.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from controller import config as config_mod
from controller import settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m controller", description=__doc__.split("\n")[0])
    ap.add_argument("--ofp-port", type=int, default=6653, help="OpenFlow listen port (6653)")
    ap.add_argument("--rest-port", type=int, default=8080, help="REST API port (8080)")
    ap.add_argument("--rest-host", default="0.0.0.0", help="REST API address (all)")
    ap.add_argument("--config", help="TOML or JSON config (see controller/config.py)")
    ap.add_argument(
        "--trust-key-file",
        help="Ed25519 private key (PEM) that signs GET /savi/trust; make a pair "
        "with: python -m controller.trust PRIVATE PUBLIC",
    )
    ap.add_argument(
        "--api-token-file",
        help="the credential POST/DELETE calls must carry (Authorization: Bearer; "
        ">= 16 characters); without it the API is read-only",
    )
    ap.add_argument(
        "--agent-state-dir",
        help="the folder where the hosts' agents write their state files (HOST.tpbt.json): "
        "the live view (GET /savi/view) shows them",
    )
    ap.add_argument("--verbose", action="store_true", help="log every packet decision")
    args = ap.parse_args(argv)
    for name in ("ofp_port", "rest_port"):
        if not 0 < getattr(args, name) < 65536:
            ap.error(f"--{name.replace('_', '-')} must be 1..65535")
    try:
        config_mod.load(args.config)
        if args.config:
            os.environ[settings.CONFIG_ENV] = os.path.abspath(args.config)
        if args.trust_key_file:
            os.environ[settings.TRUST_KEY_ENV] = os.path.abspath(args.trust_key_file)
            settings.trust_key()
        if args.agent_state_dir:
            if not os.path.isdir(args.agent_state_dir):
                raise OSError(f"--agent-state-dir {args.agent_state_dir}: not a folder")
            os.environ[settings.AGENT_STATE_ENV] = os.path.abspath(args.agent_state_dir)
        if args.api_token_file:
            os.environ[settings.API_TOKEN_ENV] = os.path.abspath(args.api_token_file)
            settings.api_token()
    except (config_mod.ConfigError, OSError, ValueError) as e:
        print(f"controller: {e}", file=sys.stderr)
        return 2

    # The compat module defines what new eventlet removed; it must run before Ryu loads.
    compat = importlib.import_module("controller.compat")
    manager = importlib.import_module(f"{compat.FRAMEWORK}.cmd.manager")

    ryu_args = [
        "--ofp-tcp-listen-port",
        str(args.ofp_port),
        "--wsapi-port",
        str(args.rest_port),
        "--wsapi-host",
        args.rest_host,
        "controller.savi_app",
    ]
    if args.verbose:
        ryu_args.insert(0, "--verbose")
    sys.argv = ["ryu-manager", *ryu_args]
    manager.main(args=ryu_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
