"""The trust export: which addresses SAVI protects, signed so hosts can rely on it.

Format (docs/rest-api.md): a JSON object with ``issued_at`` (UNIX time), ``seq`` (grows
with every binding change), ``ttl`` (seconds a host may rely on the document) and
``addresses``; ``signature`` is HMAC-SHA256, hex, keyed with the topology's trust key,
over the canonical JSON (sorted keys, no spaces) of everything but the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from controller.bindings import BOUND, Binding

DEFAULT_TTL = 30.0


def canonical(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(doc: dict, key: bytes) -> dict:
    return {**doc, "signature": hmac.new(key, canonical(doc), hashlib.sha256).hexdigest()}


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
