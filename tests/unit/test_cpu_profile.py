"""Reading ``perf report`` into each CPU's shares (experiments/cpu_profile.py)."""

import pytest

from experiments.cpu_profile import ReportError, Share, parse_report, share_of, shares, top_hooks

AGENT, AGENT_THREAD, OVS, APP = 14594, 14596, 13202, 14683

# As perf 6.1 prints it with REPORT_ARGS: overhead, samples, CPU, pid:comm, symbol.
REPORT = "\n".join(
    [
        "# comment lines and blank ones are skipped",
        "",
        " 5.40%  \t 50        \t001\t      0:swapper        \t[k] pv_native_safe_halt",
        " 3.95%  \t 400       \t000\t  14683:python         \t[k] _raw_spin_unlock_irqrestore",
        " 3.67%  \t 300       \t001\t  13202:ovs-vswitchd   \t[.] _int_free",
        " 0.42%  \t 20        \t000\t  14683:python         \t[k] nft_do_chain",
        " 0.30%  \t 15        \t001\t  13202:ovs-vswitchd   \t[k] bpf_prog_7db23d95d05ce6cf_guard_ingress",
        " 0.11%  \t 5         \t000\t  14683:python         \t[k] bpf_mt_v1",
        " 0.06%  \t 10        \t000\t  14594:python         \t[.] _PyEval_EvalFrameDefault",
        " 0.01%  \t 5         \t000\t  14596:python         \t[k] ext4_da_write_begin",
        " 0.01%  \t 60        \t000\t  14683:python         \t[k] bpf_lsm_file_permission",
        " 0.01%  \t 35        \t001\t     24:ksoftirqd/1    \t[k] handle_softirqs",
        # A sample perf could not give a thread (seen at the end of a recording).
        " 0.01%  \t 1          \t001\t     -1::-1            \t[k] iput",
    ]
)


def test_a_report_reads_into_samples():
    samples = parse_report(REPORT)
    assert len(samples) == 11
    assert (samples[-1].pid, samples[-1].comm) == (-1, ":-1")
    first = samples[0]
    assert (first.count, first.cpu, first.pid, first.comm) == (50, 1, 0, "swapper")
    assert first.symbol == "pv_native_safe_halt" and first.kernel
    assert not samples[2].kernel  # [.]: user space


def test_each_sample_has_one_class_hooks_wherever_they_ran():
    agents, switches = {AGENT, AGENT_THREAD}, {OVS}
    by_symbol = {s.symbol: share_of(s, agents, switches) for s in parse_report(REPORT)}
    assert by_symbol["pv_native_safe_halt"] is Share.IDLE
    assert by_symbol["nft_do_chain"] is Share.HOOKS  # in the application's process
    assert by_symbol["bpf_prog_7db23d95d05ce6cf_guard_ingress"] is Share.HOOKS  # in OVS's
    assert by_symbol["bpf_mt_v1"] is Share.HOOKS
    assert by_symbol["_PyEval_EvalFrameDefault"] is Share.AGENTS
    assert by_symbol["ext4_da_write_begin"] is Share.AGENTS  # another thread of an agent
    assert by_symbol["_int_free"] is Share.SWITCHES
    assert by_symbol["bpf_lsm_file_permission"] is Share.OTHER  # the kernel's LSM, not ours
    assert by_symbol["handle_softirqs"] is Share.OTHER
    assert by_symbol["iput"] is Share.OTHER  # no thread: not ours to claim


def test_each_cpus_shares_add_up_to_100():
    result = shares(parse_report(REPORT), {AGENT, AGENT_THREAD}, {OVS})
    assert set(result) == {0, 1}
    assert result[0] == pytest.approx(
        {"idle": 0, "hooks": 5.0, "agents": 3.0, "switches": 0, "other": 92.0}
    )
    assert result[1]["idle"] == pytest.approx(50 / 4.01) and result[1]["switches"] == pytest.approx(
        300 / 4.01
    )
    assert all(sum(c.values()) == pytest.approx(100) for c in result.values())


def test_the_heaviest_hooks_of_a_cpu():
    hooks = top_hooks(parse_report(REPORT), 0)
    assert list(hooks) == ["nft_do_chain", "bpf_mt_v1"]
    assert hooks["nft_do_chain"] == pytest.approx(4.0)  # 20 of 500
    assert top_hooks(parse_report(REPORT), 7) == {}  # no samples there


@pytest.mark.parametrize(
    "line",
    [
        " 5.40%  \t 50 \t001\t 0:swapper",  # a field missing
        " 5.40%  \t many \t001\t 0:swapper \t[k] x",  # a count that is not one
        " 5.40%  \t 50 \t001\t swapper \t[k] x",  # no pid
        " 5.40%  \t 50 \t001\t 0:swapper \tx",  # neither [k] nor [.]
    ],
)
def test_a_line_that_does_not_read_is_an_error_not_a_gap(line):
    with pytest.raises(ReportError):
        parse_report(line)
