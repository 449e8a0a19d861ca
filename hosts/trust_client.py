"""Fetch and verify the controller's trust export (GET /savi/trust) from inside a host.

The document format and its signature are defined in docs/rest-api.md: HMAC-SHA256 with
the topology's trust key over the canonical JSON of the document without ``signature``.
A host trusts an address only from a document that verifies and is not older than its
``ttl``; anything else raises ``TrustError`` with the reason.

    python -m hosts.trust_client --url http://172.31.254.1:PORT --key-file KEY [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
import urllib.request


class TrustError(RuntimeError):
    pass


def canonical(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def verify(doc: dict, key: bytes, now: float | None = None, max_skew: float = 5.0) -> dict:
    """Return ``doc`` if its signature verifies and it is fresh, else raise TrustError."""
    if not isinstance(doc, dict) or not isinstance(doc.get("signature"), str):
        raise TrustError("trust document is unsigned")
    expected = hmac.new(key, canonical(doc), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, doc["signature"]):
        raise TrustError("trust document signature does not verify")
    now = time.time() if now is None else now
    issued, ttl = doc.get("issued_at"), doc.get("ttl")
    if not isinstance(issued, int | float) or not isinstance(ttl, int | float):
        raise TrustError("trust document lacks issued_at or ttl")
    if issued > now + max_skew:
        raise TrustError(f"trust document issued {issued - now:.1f}s in the future")
    if now - issued > ttl:
        raise TrustError(f"trust document is {now - issued:.1f}s old, ttl {ttl}s")
    return doc


def trusted_addresses(doc: dict) -> dict[str, float]:
    """address -> seconds it stays trusted, from a verified document."""
    return {a["ip"]: float(a["lifetime"]) for a in doc.get("addresses", [])}


def fetch(url: str, key: bytes, wait_seq: int | None = None, timeout: float = 5.0) -> dict:
    path = "/savi/trust" if wait_seq is None else f"/savi/trust?wait={wait_seq}&timeout={timeout}"
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=timeout + 5) as r:
            doc = json.load(r)
    except (OSError, ValueError) as e:
        raise TrustError(f"cannot fetch trust state from {url}: {e}") from e
    return verify(doc, key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hosts.trust_client", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--url", required=True, help="controller REST base URL")
    ap.add_argument("--key-file", required=True, help="the topology's trust key")
    ap.add_argument("--json", action="store_true", help="print the whole verified document")
    args = ap.parse_args(argv)
    try:
        with open(args.key_file, "rb") as f:
            key = f.read().strip()
        doc = fetch(args.url, key)
    except (OSError, TrustError) as e:
        print(f"trust_client: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for ip, lifetime in sorted(trusted_addresses(doc).items()):
            print(f"{ip}\t{lifetime:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
