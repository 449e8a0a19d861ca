"""The signed trust export, and the host side that verifies it."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.bindings import TESTING, Binding
from controller.trust import first_seq, generate_keypair, load_private_key, sign, trust_document
from hosts.trust_client import (
    TrustRejected,
    Verifier,
    address_owners,
    load_public_key,
    trusted_addresses,
    verify,
)

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()


def doc(now=1000.0, seq=4, ttl=30, key=KEY):
    bindings = [
        Binding(1, 1, "00:00:00:00:00:01", "10.0.0.1", "fcfs"),
        Binding(1, 2, "00:00:00:00:00:02", "10.0.0.100", "dhcp", expires_at=now + 12),
        Binding(1, 3, "00:00:00:00:00:03", "10.0.0.3", "fcfs", state=TESTING),
    ]
    return sign(trust_document(bindings, now, seq=seq, ttl=ttl), key)


def test_round_trip_and_lifetimes_count_from_issued_at():
    d = verify(doc(), PUB, now=1001)
    # Addresses under an FCFS conflict probe are not exported as trusted.
    assert trusted_addresses(d, now=1001) == {"10.0.0.1": 29.0, "10.0.0.100": 11.0}
    assert trusted_addresses(d, now=1020) == {"10.0.0.1": 10.0}
    assert address_owners(d) == {
        "10.0.0.1": ("00:00:00:00:00:01", 1, 1),
        "10.0.0.100": ("00:00:00:00:00:02", 1, 2),
    }


def test_tampering_another_key_and_other_algorithms_are_refused():
    d = doc()
    d["addresses"].append({"ip": "10.0.0.66", "lifetime": 30})
    with pytest.raises(TrustRejected, match="does not verify"):
        verify(d, PUB, now=1001)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(TrustRejected, match="does not verify"):
        verify(doc(key=other), PUB, now=1001)
    hmac_doc = {**doc(), "alg": "hmac-sha256"}
    with pytest.raises(TrustRejected, match="not ed25519"):
        verify(hmac_doc, PUB, now=1001)
    unsigned = doc()
    del unsigned["signature"]
    with pytest.raises(TrustRejected, match="unsigned"):
        verify(unsigned, PUB, now=1001)


def test_stale_future_and_overlong_documents_are_refused():
    with pytest.raises(TrustRejected, match="old"):
        verify(doc(), PUB, now=1031)
    with pytest.raises(TrustRejected, match="future"):
        verify(doc(now=1100), PUB, now=1000)
    with pytest.raises(TrustRejected, match="ttl"):
        verify(doc(ttl=3600), PUB, now=1001)


def test_seq_must_not_go_back():
    v = Verifier(PUB)
    v.verify(doc(now=1000, seq=5), now=1001)
    v.verify(doc(now=1002, seq=5), now=1003)  # the same state, re-issued: fine
    with pytest.raises(TrustRejected, match="goes back"):
        v.verify(doc(now=1000, seq=5), now=1004)  # an older copy replayed
    with pytest.raises(TrustRejected, match="goes back"):
        v.verify(doc(now=1004, seq=4), now=1004)
    v.verify(doc(now=1005, seq=6), now=1005)


@pytest.mark.parametrize(
    "addresses",
    [
        None,
        "10.0.0.1",
        [3],
        [{"ip": "nope", "lifetime": 1}],
        [{"ip": "10.0.0.1"}],
        [{"ip": "10.0.0.1", "lifetime": -1}],
        [{"ip": "10.0.0.1", "lifetime": True}],
    ],
)
def test_signed_but_malformed_documents_are_refused(addresses):
    d = sign({"issued_at": 1000.0, "seq": 1, "ttl": 30, "addresses": addresses}, KEY)
    with pytest.raises(TrustRejected):
        verify(d, PUB, now=1001)


def test_seq_starts_from_the_clock_so_a_restart_goes_on():
    assert first_seq(1000.0) == 1_000_000 < first_seq(1000.5)


def test_key_files(tmp_path):
    generate_keypair(tmp_path / "k", tmp_path / "k.pub")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    key, pub = load_private_key(tmp_path / "k"), load_public_key(tmp_path / "k.pub")
    verify(sign(trust_document([], 1000.0, 1), key), pub, now=1000)
    with pytest.raises(ValueError, match="PEM"):
        load_private_key(tmp_path / "k.pub")
