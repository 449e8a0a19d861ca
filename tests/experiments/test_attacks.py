"""Each attack program against real kernels on the dual-homed topology: it succeeds
against vanilla MPTCP without source address validation, and fails where the design
says it must (SAVI on the attacker's access network; enforcement on the unprotected one;
a blind attacker). The victim's kernel counters are the oracle (experiments.trial)."""

import pytest

from experiments.adaptive import SHAPE_ORDER
from experiments.attacks import ATTACKS
from experiments.harness import Transfer, TransferTimeout, abort_leftovers, set_mode, warm_up
from experiments.records import Cell, attempt_outcomes
from experiments.trial import PORT, run_trial
from tests.integration.tools import stat, wait_until
from topologies.builder import Testbed
from topologies.dualhomed import DualHomedTopo

M1_PORT = 2  # m1's port on s1


def _testbed(tmp_path_factory, coverage: str, mode: str):
    d = tmp_path_factory.mktemp(coverage.replace("+", "_"))
    with Testbed(DualHomedTopo(coverage=coverage), log_dir=str(d / "tb")) as tb:
        warm_up(tb)
        set_mode(tb, mode)
        tb.work = d
        yield tb


# Class scope: one testbed per class, torn down before the next class builds its own.
@pytest.fixture(scope="class")
def no_sav(tmp_path_factory):
    yield from _testbed(tmp_path_factory, "none", "vanilla")


@pytest.fixture(scope="class")
def savi_enforce(tmp_path_factory):
    yield from _testbed(tmp_path_factory, "savi", "enforce")


def trial(tb, key: str, number: int = 0, **kw) -> dict:
    cell = Cell.parse(key)
    record = run_trial(tb, cell, number, tb.work / cell.attack, **kw)
    print(key, record["evidence"], record["replayed"], f"{record['trial_seconds']:.1f} s")
    return record


class TestWithoutSav:
    """coverage none, vanilla hosts"""

    @pytest.mark.parametrize("attack", ATTACKS)
    def test_succeeds_against_vanilla_without_sav(self, no_sav, attack):
        # The first subflow (with the keys) on the path the attacker eavesdrops.
        record = trial(no_sav, f"none/vanilla/protected/{attack}/eavesdrop", bind=None)
        assert record["keys_known"] and record["forged_sent"] > 0
        assert record["success"], (record["evidence"], record["victim_counters"])
        if attack == "fastclose":
            assert not record["transfer_ok"]  # the connection was reset
        if attack in ("add_addr", "mp_prio", "join_flood"):
            assert record["bytes_match"], record["transfer_error"] or "the digests differ"

    def test_the_claim_succeeds_against_vanilla_without_sav(self, no_sav):
        """The attack on the extension, judged by the peer's kernel (b's MPPrioRx): the
        forged ADDR_TRUST means nothing to vanilla b, the MP_PRIO behind it is taken."""
        record = trial(no_sav, "none/vanilla/unprotected/claim/adaptive")
        assert record["keys_known"] and record["forged_sent"] > 0
        assert record["success"], (record["evidence"], record["victim_counters"])
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"

    @pytest.mark.parametrize("attack", ["replay", "own_connection"])
    def test_the_replay_and_the_own_connection_succeed_against_vanilla(self, no_sav, attack):
        """The positive control of the attacks on the extension: vanilla b has no trust
        to bend, and takes the MP_PRIO behind either attack. The replay had something to
        resend (vanilla a sends little control: the echo of b's announcement); vanilla b
        refuses the attacker's T-flagged ADD_ADDR (its HMAC is the extension's)."""
        record = trial(no_sav, f"none/vanilla/unprotected/{attack}/adaptive")
        assert record["forged_sent"] > 0
        assert record["success"], (record["evidence"], record["victim_counters"])
        if attack == "replay":
            assert record["replayed"], record
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"

    def test_connections_left_by_earlier_trials_are_aborted(self, no_sav):
        """A trial's connection is the only one its attacker can reach: the subflows of
        one still open from before are reset at both ends, and none comes back (what the
        attacker's tap would show)."""
        a = no_sav.net["a"]
        old = Transfer(no_sav, seconds=1, idle=30, timeout=60, port=PORT)
        try:
            wait_until(
                lambda: a.cmd(f"ss -tnH state established '( dport = :{PORT} )'").strip(),
                10,
                "the old connection to be established",
            )
            assert abort_leftovers(no_sav, ("a", "b"), (PORT,)) >= 2
            assert abort_leftovers(no_sav, ("a", "b"), (PORT,)) == 0
        finally:
            old.kill()

    @pytest.mark.parametrize("shape", ["ip_options", "fragments"])
    def test_the_early_forgery_is_dated_by_its_own_packets(self, no_sav, shape):
        """The longest headers (40 bytes of IPv4 options and of TCP options) are captured
        whole and fragments reassembled: ``early_ms`` is when the early attempt reached
        a's link, not the next attempt (0.7 s on, when the capture cut or missed them)."""
        record = trial(
            no_sav, "none/vanilla/unprotected/mp_prio/adaptive", number=SHAPE_ORDER.index(shape)
        )
        assert record["early_shape"] == shape
        assert record["early_ms"] is not None and 0 < record["early_ms"] < 100, record

    def test_a_transfer_that_does_not_end_in_time_is_killed_and_said(self, no_sav):
        """What a trial then records as a failed transfer, for the attack to explain
        (an early injected payload once left a connection sending for ever)."""
        xfer = Transfer(no_sav, seconds=30, pause=0, port=PORT + 7)
        with pytest.raises(TransferTimeout, match="did not end within 1s"):
            xfer.outcome(timeout=1)
        assert xfer.client.poll() is not None and xfer.server.poll() is not None

    def test_a_trial_records_a_transfer_that_did_not_end_as_failed(self, no_sav, monkeypatch):
        """run_trial takes the timeout as the transfer's failure (for the attack to
        explain), not as a broken testbed that would end the run."""

        def hung(xfer, timeout=120):
            xfer.kill()
            raise TransferTimeout(f"the transfer did not end within {timeout}s")

        monkeypatch.setattr(Transfer, "outcome", hung)
        record = trial(no_sav, "none/vanilla/unprotected/mp_prio/eavesdrop")
        assert not record["transfer_ok"] and not record["bytes_match"]
        assert "did not end within 30s" in record["transfer_error"], record["transfer_error"]

    def test_blind_attacker_fails_without_sav(self, no_sav):
        record = trial(no_sav, "none/vanilla/protected/rm_addr/blind")
        assert record["forged_sent"] > 0 and not record["keys_known"]
        assert not record["success"], record["evidence"]
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"
        # b's MPTcpExtNoDSSInWindow over the trial: a count, whatever the offload mode
        assert isinstance(record["window_drops"], int) and record["window_drops"] >= 0


class TestWithSaviAndEnforcement:
    """coverage savi, hosts with the agents in enforcement mode"""

    @pytest.mark.parametrize("attack", ATTACKS)
    def test_savi_stops_the_attacker_on_the_protected_network(self, savi_enforce, attack):
        # The same attacker as above, who knows the keys: only SAVI is in its way.
        before = stat(savi_enforce, M1_PORT, "spoofed_dropped_switch")
        record = trial(savi_enforce, f"savi/enforce/protected/{attack}/eavesdrop", bind=None)
        assert record["keys_known"] and record["forged_sent"] > 0
        # ... and it was SAVI: m1's port of s1 dropped every forged packet.
        wait_until(
            lambda: stat(savi_enforce, M1_PORT, "spoofed_dropped_switch")
            >= before + record["forged_sent"],
            10,
            "s1 to count the drops",
        )
        assert not record["success"], record["evidence"]
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"

    @pytest.mark.parametrize("attack", ["add_addr", "rm_addr", "mp_prio", "fastclose"])
    def test_enforcement_stops_forged_options_on_the_unprotected_path(self, savi_enforce, attack):
        record = trial(savi_enforce, f"savi/enforce/unprotected/{attack}/eavesdrop")
        # The eavesdropper saw the first subflow's handshake on its path: it knows the keys.
        assert record["keys_known"] and record["forged_sent"] > 0
        assert not record["success"], record["evidence"]
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"
        assert record["control_trusted"] > 0

    def test_the_adaptive_attacker_finds_no_shape_or_moment_that_works(self, savi_enforce):
        """MP_PRIO in every shape from the connection's first milliseconds (before any
        subflow is trusted: the opening is in scope from the SYN) to the lull, each
        attempt judged on its own by a's MPPrioRx."""
        record = trial(savi_enforce, "savi/enforce/unprotected/mp_prio/adaptive", exhaustive=True)
        assert record["keys_known"] and record["attempts"] == 27
        assert not record["success"], record["attempt_log"]
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"

    def test_a_claim_is_believed_only_in_the_opening(self, savi_enforce):
        """The eavesdropper's claim that a's unprotected address is protected: once b has
        a trusted subflow, a's unprotected subflow is guarded at b and the claim is
        dropped. A claim b believed earlier keeps that subflow trusted (the attacker
        refreshes it): later attempts can work only after an early one did."""
        record = trial(savi_enforce, "savi/enforce/unprotected/claim/adaptive", exhaustive=True)
        assert record["keys_known"] and record["forged_sent"] > 0
        outcomes = attempt_outcomes([record])  # "moment/shape" -> [worked, tried]
        early = [worked for what, (worked, _) in outcomes.items() if what.startswith("early/")]
        later = [worked for what, (worked, _) in outcomes.items() if not what.startswith("early/")]
        assert len(later) == 26
        if early != [1]:
            assert set(later) == {0}, record["attempt_log"]

    def test_replays_of_the_trusted_paths_messages_are_refused(self, savi_enforce):
        """The replaying attacker reads both of a's access links (it cannot send on the
        protected one) and resends every control option a sent, on the subflow it was
        sent on, with current sequence numbers, from a's unprotected network. b's agent
        refuses the recorded ADDR_TRUSTs as replays; its TPBT and kernel do not move."""
        before = savi_enforce.tpbt("b")["counters"]
        record = trial(savi_enforce, "savi/enforce/unprotected/replay/adaptive", exhaustive=True)
        after = savi_enforce.tpbt("b")["counters"]
        assert "AddrTrust" in record["replayed"] and record["forged_sent"] > 0
        assert after["addr_trust_replayed"] > before["addr_trust_replayed"]
        assert not record["success"], record["attempt_log"] + " " + record["evidence"]
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"

    def test_the_own_connection_bends_nothing_on_as_connection(self, savi_enforce):
        """m2's own connection to b carries T-ADD_ADDRs naming a's addresses, a
        notification and withdrawals, all made with m2's own keys: b takes them for m2's
        connection only (its T-ADD_ADDR count grows), and a's connection at b neither
        gains trust in a's unprotected address nor loses it in the protected one."""
        before = savi_enforce.tpbt("b")["counters"]
        record = trial(
            savi_enforce, "savi/enforce/unprotected/own_connection/adaptive", exhaustive=True
        )
        after = savi_enforce.tpbt("b")["counters"]
        assert record["forged_sent"] > 0 and record["attempts"] == 3
        assert after["add_addr_trust_accepted"] > before["add_addr_trust_accepted"]
        assert not record["success"], record["attempt_log"] + " " + record["evidence"]
        assert "TPBT: unchanged" in record["evidence"]
        assert record["bytes_match"], record["transfer_error"] or "the digests differ"


@pytest.fixture(scope="class")
def dual_stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("dual_stack")
    with Testbed(DualHomedTopo(coverage="savi", ipv6=True), log_dir=str(d / "tb")) as tb:
        warm_up(tb)
        tb.work = d
        yield tb


class TestIpv6:
    """The adaptive attacker on IPv6 connections (coverage savi, dual stack, the attacker
    on a's legacy network): it works against vanilla hosts, whatever the oracle (MIB,
    ip6tables rules), and not against enforcing ones."""

    @pytest.mark.parametrize("attack", ["add_addr", "rm_addr", "join_flood"])
    def test_the_adaptive_attacker_succeeds_against_vanilla_hosts(self, dual_stack, attack):
        set_mode(dual_stack, "vanilla")
        record = trial(dual_stack, f"savi/vanilla/unprotected/{attack}/adaptive/v6")
        assert record["family"] == "v6" and record["keys_known"], record
        assert record["success"], (record["attempt_log"], record["victim_counters"])

    @pytest.mark.parametrize("shape", ["ip_options", "fragments"])
    def test_the_early_forgery_is_dated_by_its_own_packets(self, dual_stack, shape):
        """TCP behind a destination options header or a fragment header, which libpcap's
        ``tcp port`` does not see: captured, reassembled and dated as over IPv4."""
        set_mode(dual_stack, "vanilla")
        record = trial(
            dual_stack,
            "savi/vanilla/unprotected/mp_prio/adaptive/v6",
            number=SHAPE_ORDER.index(shape),
        )
        assert record["early_shape"] == shape
        assert record["early_ms"] is not None and 0 < record["early_ms"] < 100, record

    @pytest.mark.parametrize("attack", ["add_addr", "rm_addr", "mp_prio", "join_flood"])
    def test_the_adaptive_attacker_finds_nothing_against_enforcing_hosts(self, dual_stack, attack):
        set_mode(dual_stack, "enforce")
        record = trial(dual_stack, f"savi/enforce/unprotected/{attack}/adaptive/v6")
        assert record["keys_known"] and record["forged_sent"] > 0
        assert not record["success"], (record["attempt_log"], record["evidence"])
        assert record["bytes_match"] and record["control_trusted"] > 0
