"""The trust export: which addresses SAVI protects, signed so hosts can rely on it.

Format (docs/rest-api.md): a JSON object with ``issued_at`` (UNIX time), ``seq`` (grows
with every binding change, and across controller restarts: it starts from the clock),
``ttl`` (seconds a host may rely on the document) and ``addresses`` (each with its
``lifetime``, counted from ``issued_at``); ``alg`` is ``ed25519`` and ``signature`` the
Ed25519 signature, hex, over the canonical JSON (sorted keys, no spaces) of everything
but the signature. Only the controller holds the private key; hosts get the public key,
so no host can forge another host's trust.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.bindings import BOUND, Binding

DEFAULT_TTL = 30.0
ALG = "ed25519"


def canonical(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(doc: dict, key: Ed25519PrivateKey) -> dict:
    doc = {**doc, "alg": ALG}
    return {**doc, "signature": key.sign(canonical(doc)).hex()}


def first_seq(now: float | None = None) -> int:
    """Where a controller's ``seq`` starts: milliseconds of the clock, so a restarted
    controller's documents still come after the ones it sent before."""
    return int((time.time() if now is None else now) * 1000)


def generate_keypair(private_path: Path, public_path: Path) -> None:
    """A new Ed25519 key pair: the private key (PEM, mode 0600) for the controller, the
    public key (PEM) for the hosts."""
    key = Ed25519PrivateKey.generate()
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The controller's signing key; ValueError naming the file if it is not one."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a PEM private key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def trust_document(bindings: list[Binding], now: float, seq: int, ttl: float = DEFAULT_TTL):
    addresses = []
    for b in bindings:
        if b.state != BOUND:
            continue
        lifetime = b.expires_in(now)
        addresses.append(
            {
                "ip": b.ip,
                "mac": b.mac,
                "dpid": b.dpid,
                "port": b.port,
                "source": b.source,
                "lifetime": round(ttl if lifetime is None else min(ttl, lifetime), 3),
            }
        )
    return {"issued_at": round(now, 3), "seq": seq, "ttl": ttl, "addresses": addresses}


def main(argv: list[str] | None = None) -> int:
    """``python -m controller.trust PRIVATE PUBLIC``: write a new key pair."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m controller.trust", description=main.__doc__)
    ap.add_argument("private", type=Path, help="where the controller's private key goes")
    ap.add_argument("public", type=Path, help="where the hosts' public key goes")
    args = ap.parse_args(argv)
    generate_keypair(args.private, args.public)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
