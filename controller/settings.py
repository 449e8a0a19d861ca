"""Launch settings handed from ``python -m controller`` to the app (same process).

Environment variables so that ``ryu-manager controller.savi_app`` works the same way.
"""

import os

CONFIG_ENV = "SAVI_CONFIG"
TRUST_KEY_ENV = "SAVI_TRUST_KEY_FILE"


def config_path() -> str | None:
    return os.environ.get(CONFIG_ENV) or None


def trust_key() -> bytes | None:
    path = os.environ.get(TRUST_KEY_ENV)
    if not path:
        return None
    with open(path, "rb") as f:
        key = f.read().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: trust key shorter than 16 bytes")
    return key
