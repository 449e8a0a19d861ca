"""The trial's success predicates where the victim's MIB alone would mislead: during a
transfer, legitimate announcements and joins move the same counters as an attack, so
the hijack and the flood are judged by packet counters of the trial's own iptables
rules (experiments.trial.ORACLES)."""

import shlex

from experiments.attacks import TAG
from experiments.trial import ORACLES, succeeded

HIJACK, FORGED_IN = ORACLES["add_addr"].key, ORACLES["join_flood"].key


def test_a_hijack_needs_a_syn_to_the_attacker_not_just_an_announcement_and_a_join():
    legitimate = {"MPTcpExtAddAddr": 1, "MPTcpExtMPJoinSynTx": 1, HIJACK: 0}
    assert succeeded("add_addr", legitimate)[0] is False
    ok, evidence = succeeded("add_addr", {**legitimate, HIJACK: 2})
    assert ok and "SYNs to the attacker: 2" in evidence


def test_a_flood_needs_forged_syns_at_the_victims_tcp_and_joins_taken():
    legitimate_join = {"MPTcpExtMPJoinSynRx": 1, "MPTcpExtMPJoinNoTokenFound": 0, FORGED_IN: 0}
    assert succeeded("join_flood", legitimate_join)[0] is False
    wrong_token = {"MPTcpExtMPJoinSynRx": 20, "MPTcpExtMPJoinNoTokenFound": 20, FORGED_IN: 20}
    assert succeeded("join_flood", wrong_token)[0] is False
    taken = {"MPTcpExtMPJoinSynRx": 20, "MPTcpExtMPJoinNoTokenFound": 0, FORGED_IN: 20}
    ok, evidence = succeeded("join_flood", taken)
    assert ok and "forged SYNs in: 20" in evidence


def test_the_oracle_rules_survive_the_shell_and_name_themselves():
    hijack = shlex.split(ORACLES["add_addr"].rule("10.1.0.66"))
    assert hijack[:3] == ["OUTPUT", "-d", "10.1.0.66"]
    flood = shlex.split(ORACLES["join_flood"].rule("10.1.0.66"))
    assert f"4>>16={TAG:#x}" in flood  # one word: not a redirection
    for rule in (hijack, flood):
        assert rule[-2:] == ["--comment", rule[-1]] and rule[-1].startswith("tmptcp-oracle-")
