"""Launch settings handed from ``python -m controller`` to the app (same process).

Environment variables so that ``ryu-manager controller.savi_app`` works the same way.
"""

import os

CONFIG_ENV = "SAVI_CONFIG"
TRUST_KEY_ENV = "SAVI_TRUST_KEY_FILE"
API_TOKEN_ENV = "SAVI_API_TOKEN_FILE"
AGENT_STATE_ENV = "SAVI_AGENT_STATE_DIR"


def agent_state_dir() -> str | None:
    """Where the hosts' agents write their state files (the live view reads them)."""
    return os.environ.get(AGENT_STATE_ENV) or None


def config_path() -> str | None:
    return os.environ.get(CONFIG_ENV) or None


def trust_key():
    """The Ed25519 private key that signs the trust export, or None (unsigned)."""
    from controller.trust import load_private_key

    path = os.environ.get(TRUST_KEY_ENV)
    return load_private_key(path) if path else None


def api_token() -> str | None:
    """The credential REST write calls must carry, or None (writes refused)."""
    path = os.environ.get(API_TOKEN_ENV)
    if not path:
        return None
    with open(path) as f:
        token = f.read().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: API token shorter than 16 characters")
    return token
