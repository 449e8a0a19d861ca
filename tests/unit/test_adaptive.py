"""The adaptive attacker's plan."""

import pytest

from experiments.adaptive import (
    DESTRUCTIVE,
    EXTENSION_PLANS,
    FLOOD,
    SHAPE_ORDER,
    Attempt,
    early_shape,
    plan,
)
from experiments.shapes import SHAPES


def test_one_shape_early_then_every_shape_in_the_bulk_and_the_lull_gentle_first():
    attempts = plan("rm_addr", early="fin")
    assert attempts[0] == Attempt("early", "fin")
    rest = attempts[1:]
    assert len(rest) == 2 * len(SHAPES)
    for i, moment in enumerate(("bulk", "lull")):
        part = rest[i * len(SHAPES) : (i + 1) * len(SHAPES)]
        assert {a.moment for a in part} == {moment}
        shapes = [a.shape for a in part]
        assert set(shapes) == set(SHAPES) and shapes[-len(DESTRUCTIVE) :] == list(DESTRUCTIVE)
    assert SHAPE_ORDER[0] == "plain"


def test_thirteen_trials_try_every_shape_early():
    assert {early_shape("mp_prio", t) for t in range(len(SHAPES))} == set(SHAPES)
    assert early_shape("mp_prio", 0) == early_shape("mp_prio", len(SHAPES)) == "plain"
    assert early_shape("join_flood", 3) == ""
    with pytest.raises(ValueError, match="unknown shape"):
        plan("mp_prio", early="sideways")


def test_the_flood_strikes_in_the_lull_and_moments_can_be_chosen():
    assert plan("join_flood") == [Attempt("lull", FLOOD)]
    assert plan("join_flood", ("early",)) == []
    assert {a.moment for a in plan("mp_prio", ("bulk",))} == {"bulk"}
    with pytest.raises(ValueError, match="unknown moments"):
        plan("mp_prio", ("dawn",))


def test_which_broken_transfers_an_attack_explains():
    from experiments.trial import explains_broken_transfer

    def rec(attack, success, log, ok=False):
        return {"attack": attack, "success": success, "attempt_log": log, "transfer_ok": ok}

    assert explains_broken_transfer(rec("mp_prio", False, "early/plain:0", ok=True))
    assert explains_broken_transfer(rec("fastclose", True, "early/plain:1"))
    assert not explains_broken_transfer(rec("fastclose", False, "early/plain:0"))
    assert not explains_broken_transfer(rec("mp_prio", True, "early/payload:1"))
    # A claim's payload, FIN or RST went into b's receive stream.
    assert explains_broken_transfer(rec("claim", False, "early/payload:0 bulk/plain:0"))
    assert not explains_broken_transfer(rec("claim", False, "early/plain:0 bulk/psh:0"))


def test_the_attacks_on_the_extension_have_short_plans():
    assert [(a.moment, a.shape) for a in plan("replay")] == list(EXTENSION_PLANS["replay"])
    assert all(a.moment != "early" for a in plan("replay")) and early_shape("replay", 3) == ""
    assert early_shape("own_connection", 5) == "plain"
    assert [a.moment for a in plan("own_connection", moments=("lull",))] == ["lull"]


def test_trust_bent_names_what_an_attack_changed_in_the_tpbt():
    def entry(dst, trusted, token=1):
        return {"token": token, "src": "10.3.0.20", "dst": dst, "dip_trust": trusted}

    from experiments.trial import trust_bent

    protected, unprotected = {"10.1.0.10"}, {"10.2.0.10"}
    before = [entry("10.1.0.10", True), entry("10.2.0.10", False)]
    assert trust_bent(before, before, protected, unprotected) == ""
    assert (
        trust_bent(
            before, [entry("10.1.0.10", False), entry("10.2.0.10", True)], protected, unprotected
        )
        == "no longer trusts 10.1.0.10, trusts 10.2.0.10"
    )
    # Another connection's entries, and a subflow gone, are not the attack's doing.
    after = [entry("10.2.0.10", False), entry("10.1.0.10", False, token=2)]
    assert trust_bent(before, after, protected, unprotected) == ""


def test_each_failed_attempt_says_which_refusal_counters_moved():
    """A failed attempt is kept with the victim's counters of refused segments and
    options that moved over it; other counters (legitimate traffic) are left out."""
    from experiments.adaptive import Outcome
    from experiments.trial import REFUSALS, refusals

    moved = {
        "TcpExtPAWSEstab": 1,
        "TcpExtTCPHPAcks": 40,
        "MPTcpExtRmAddrDrop": 2,
        "IpInHdrErrors": 0,
    }
    assert refusals(moved) == "TcpExtPAWSEstab+1 MPTcpExtRmAddrDrop+2"
    assert refusals({"TcpExtTCPHPAcks": 3}) == ""
    assert len(set(REFUSALS)) == len(REFUSALS)
    outcome = Outcome()
    outcome.refused = [
        (Attempt("early", "plain"), "TcpExtPAWSEstab+1"),
        (Attempt("bulk", "fin"), ""),
    ]
    assert outcome.refusals_text() == "early/plain: TcpExtPAWSEstab+1; bulk/fin: -"


def test_every_refusal_counter_is_one_this_kernel_keeps():
    """A misspelt name would never move, and every attempt would read as refused by nothing."""
    import subprocess

    from experiments.trial import REFUSALS

    out = subprocess.run(["nstat", "-saz"], capture_output=True, text=True, check=True).stdout
    kept = {line.split()[0] for line in out.splitlines() if line and not line.startswith("#")}
    assert set(REFUSALS) <= kept, sorted(set(REFUSALS) - kept)
