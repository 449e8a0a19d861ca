"""Fetch and verify the controller's trust export (GET /savi/trust) from inside a host.

The document format and its signature are defined in docs/rest-api.md: Ed25519 over the
canonical JSON of the document without ``signature``; hosts hold only the controller's
public key. A host takes an address as trusted only from a document that verifies, is
not older than its ``ttl``, does not go back in ``seq``, and then only for the
address's ``lifetime`` counted from ``issued_at``.

Two kinds of failure: ``TrustUnavailable`` (the controller did not answer: keep what was
verified until it expires) and ``TrustRejected`` (an answer that must not be believed:
count it, log it, keep what was verified).

    python -m hosts.trust_client --url http://172.31.254.1:PORT --pubkey-file KEY [--json]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hosts.tpbt import Owner

MAX_TTL = 300.0  # s: a document may ask to be relied on this long at most
MAX_SKEW = 5.0  # s: clocks of controller and host (one machine here)


class TrustError(RuntimeError):
    pass


class TrustUnavailable(TrustError):
    """No answer (network, HTTP error): transient."""


class TrustRejected(TrustError):
    """An answer that does not verify or is malformed."""


def canonical(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (ValueError, TypeError) as e:
        raise TrustError(f"{path}: not a PEM public key ({e})") from e
    if not isinstance(key, Ed25519PublicKey):
        raise TrustError(f"{path}: not an Ed25519 public key")
    return key


@dataclass
class Verifier:
    """Verifies documents in order: ``seq`` never goes back (nor ``issued_at`` for the
    same ``seq``), so an old signed document replayed to the host is refused."""

    key: Ed25519PublicKey
    last: tuple[int, float] | None = None

    def verify(self, doc: dict, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        if not isinstance(doc, dict) or not isinstance(doc.get("signature"), str):
            raise TrustRejected("trust document is unsigned")
        if doc.get("alg") != "ed25519":
            raise TrustRejected(f"trust document signed with {doc.get('alg')!r}, not ed25519")
        try:
            self.key.verify(bytes.fromhex(doc["signature"]), canonical(doc))
        except (InvalidSignature, ValueError):
            raise TrustRejected("trust document signature does not verify") from None
        issued, ttl, seq = doc.get("issued_at"), doc.get("ttl"), doc.get("seq")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (issued, ttl)):
            raise TrustRejected("trust document lacks issued_at or ttl")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TrustRejected("trust document lacks seq")
        if not 0 < ttl <= MAX_TTL:
            raise TrustRejected(f"trust document ttl {ttl} outside (0, {MAX_TTL}]")
        if issued > now + MAX_SKEW:
            raise TrustRejected(f"trust document issued {issued - now:.1f}s in the future")
        if now - issued > ttl:
            raise TrustRejected(f"trust document is {now - issued:.1f}s old, ttl {ttl}s")
        if self.last is not None and (seq, issued) < self.last:
            raise TrustRejected(f"trust document goes back: seq {seq} after {self.last[0]}")
        _check_addresses(doc.get("addresses"))
        self.last = (seq, issued)
        return doc


def _check_addresses(addresses) -> None:
    if not isinstance(addresses, list):
        raise TrustRejected("trust document has no address list")
    for a in addresses:
        if not isinstance(a, dict):
            raise TrustRejected(f"address entry {a!r} is not an object")
        try:
            ipaddress.ip_address(a.get("ip"))
        except ValueError:
            raise TrustRejected(f"address entry {a!r} has no valid ip") from None
        life = a.get("lifetime")
        if not isinstance(life, int | float) or isinstance(life, bool) or life < 0:
            raise TrustRejected(f"address entry {a!r} has no valid lifetime")


def verify(doc: dict, key: Ed25519PublicKey, now: float | None = None) -> dict:
    """One document on its own (no order); TrustRejected with the reason."""
    return Verifier(key).verify(doc, now)


def trusted_addresses(doc: dict, now: float | None = None) -> dict[str, float]:
    """address -> seconds it stays trusted from ``now``, from a verified document:
    lifetimes count from ``issued_at`` and never exceed ``ttl``."""
    now = time.time() if now is None else now
    end = doc["issued_at"] + doc["ttl"]
    out = {}
    for a in doc["addresses"]:
        left = min(doc["issued_at"] + float(a["lifetime"]), end) - now
        if left > 0:
            out[a["ip"]] = left
    return out


def address_owners(doc: dict) -> dict[str, Owner]:
    """address -> who holds its binding (MAC, switch, port), from a verified document:
    every binding of the domain, so a host can tell when a peer's address is unbound."""
    return {a["ip"]: (a.get("mac"), a.get("dpid"), a.get("port")) for a in doc["addresses"]}


def fetch_document(url: str, wait_seq: int | None = None, timeout: float = 5.0) -> dict:
    path = "/savi/trust" if wait_seq is None else f"/savi/trust?wait={wait_seq}&timeout={timeout}"
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=timeout + 5) as r:
            body = r.read()
    except OSError as e:
        raise TrustUnavailable(f"cannot fetch trust state from {url}: {e}") from e
    try:
        return json.loads(body)
    except ValueError as e:
        raise TrustRejected(f"trust state from {url} is not JSON: {e}") from e


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hosts.trust_client", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    ap.add_argument("--url", required=True, help="controller REST base URL")
    ap.add_argument("--pubkey-file", required=True, help="the controller's public key (PEM)")
    ap.add_argument("--json", action="store_true", help="print the whole verified document")
    args = ap.parse_args(argv)
    try:
        doc = verify(fetch_document(args.url), load_public_key(args.pubkey_file))
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
