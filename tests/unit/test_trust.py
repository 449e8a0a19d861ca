"""The signed trust export, and the host side that verifies it."""

import pytest

from controller.bindings import TESTING, Binding
from controller.trust import sign, trust_document
from hosts.trust_client import TrustError, trusted_addresses, verify

KEY = b"k" * 32


def doc(now=1000.0):
    bindings = [
        Binding(1, 1, "00:00:00:00:00:01", "10.0.0.1", "fcfs"),
        Binding(1, 2, "00:00:00:00:00:02", "10.0.0.100", "dhcp", expires_at=now + 12),
        Binding(1, 3, "00:00:00:00:00:03", "10.0.0.3", "fcfs", state=TESTING),
    ]
    return sign(trust_document(bindings, now, seq=4, ttl=30), KEY)


def test_round_trip_and_lifetimes():
    d = verify(doc(), KEY, now=1001)
    # Addresses under an FCFS conflict probe are not exported as trusted.
    assert trusted_addresses(d) == {"10.0.0.1": 30.0, "10.0.0.100": 12.0}


def test_tampering_is_detected():
    d = doc()
    d["addresses"].append({"ip": "10.0.0.66", "lifetime": 30})
    with pytest.raises(TrustError, match="does not verify"):
        verify(d, KEY, now=1001)


def test_wrong_key_unsigned_and_stale():
    with pytest.raises(TrustError, match="does not verify"):
        verify(doc(), b"x" * 32, now=1001)
    unsigned = doc()
    del unsigned["signature"]
    with pytest.raises(TrustError, match="unsigned"):
        verify(unsigned, KEY, now=1001)
    with pytest.raises(TrustError, match="old"):
        verify(doc(), KEY, now=1031)
