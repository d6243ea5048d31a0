"""usable_cores(): the cores this process may use, which is what thread counts are sized by."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aigc_chat import cpu


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity masks")
def test_an_affinity_mask_is_honoured_where_cpu_count_is_not() -> None:
    """Pinned to one core (as taskset or a container cpuset would), the process gets 1, and
    the llama backend sizes its threads by it."""
    code = ("import os\nos.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
            "from aigc_chat.cpu import usable_cores\n"
            "from aigc_chat.backends.llama_cpp_backend import default_threads\n"
            "print(usable_cores(), default_threads(), os.cpu_count())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cores, threads, machine = map(int, r.stdout.split())
    assert (cores, threads) == (1, 1) and machine >= 1
    assert cpu.usable_cores() == len(os.sched_getaffinity(0))  # and here, unpinned


def test_without_affinity_support_the_machine_count_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cpu.usable_cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "cannot tell" still means one core
    assert cpu.usable_cores() == 1


def test_llama_default_threads_halve_past_four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from aigc_chat.backends import llama_cpp_backend

    for cores, threads in ((1, 1), (3, 3), (4, 4), (6, 4), (8, 4), (16, 8)):
        monkeypatch.setattr(llama_cpp_backend, "usable_cores", lambda n=cores: n)
        assert llama_cpp_backend.default_threads() == threads, cores


def test_a_cgroup_quota_caps_the_usable_cores(tmp_path) -> None:
    v2 = tmp_path / "cpu.max"
    v1 = (tmp_path / "quota", tmp_path / "period")
    v2.write_text("150000 100000\n")
    assert cpu.cgroup_quota_cores(v2, v1) == 1.5
    v2.write_text("max 100000\n")
    assert cpu.cgroup_quota_cores(v2, v1) is None
    parent = tmp_path / "parent.max"  # a quota up the tree (a systemd slice) caps a child without one
    parent.write_text("50000 100000\n")
    assert cpu.cgroup_quota_cores([v2, parent], v1) == 0.5
    v2.unlink()  # cgroup v1
    v1[0].write_text("-1\n")
    v1[1].write_text("100000\n")
    assert cpu.cgroup_quota_cores(v2, v1) is None
    v1[0].write_text("50000\n")
    assert cpu.cgroup_quota_cores(v2, v1) == 0.5
    v1[0].write_text("garbage\n")
    assert cpu.cgroup_quota_cores(v2, v1) is None


def test_engine_threads_leave_the_cores_others_use() -> None:
    # (cores, others' busy cores, reserve for a UI, cores measured) -> threads
    table = [((2, None, 0, 0), 2), ((2, 0.1, 0, 0), 2), ((2, 0.5, 0, 0), 2), ((2, 0.6, 0, 0), 1),
             ((2, 2.0, 0, 0), 1), ((2, 0.0, 1, 0), 1), ((8, None, 0, 0), 4), ((8, 2.0, 0, 0), 4),
             ((8, 6.0, 0, 0), 2), ((8, 9.0, 0, 0), 1), ((1, 3.0, 0, 0), 1),
             # a quota of 2 cores on a 32-core host where 16 are busy: 2 are still free for us
             ((2, 16.0, 0, 32), 2), ((2, 31.0, 0, 32), 1)]
    for (cores, others, reserve, seen), want in table:
        assert cpu.engine_threads(cores, others, reserve, seen) == want, (cores, others, reserve, seen)


def test_the_load_meter_counts_others_recently_not_this_process_nor_its_children() -> None:
    state = {"busy": 0, "own": 0, "child": 0, "t": 0.0}
    ticks = os.sysconf("SC_CLK_TCK")
    slept: list[float] = []

    def stat() -> str:
        b = state["busy"]
        return (f"cpu  {b} 0 0 0\ncpu0 {b} 0 0 500 0 0 0 0\ncpu1 0 0 0 500 0 0 0 0\n"
                f"cpu2 {int(state['t'] * 10 * ticks)} 0 0 0 0 0 0 0\n")  # not one of ours

    def sleep(s: float) -> None:
        slept.append(s)
        state["t"] += s

    meter = cpu.LoadMeter(read_stat=stat, read_self=lambda: f"7 (a b) R {'0 ' * 10}{state['own']} 0 {state['child']} 0",
                          cores=lambda: {0, 1}, clock=lambda: state["t"], sleep=sleep)
    state.update(t=1.0, busy=2 * ticks, own=ticks, child=ticks)  # ours and a reaped child's: not load
    reading = meter.read()
    assert reading is not None and reading.others == 0.0 and reading.window == 1.0 and reading.cores == 2
    state.update(t=2.0, busy=4 * ticks)  # then two cores' worth of someone else's for a second
    reading = meter.read()
    assert reading is not None and reading.others == pytest.approx(2.0) and not slept
    # an hour of load long ago does not count: the window is the recent past (the ring)
    for _ in range(5):
        state["t"] += 1.0
        meter.tick()
    state["t"] += 1.0
    reading = meter.read()
    assert reading is not None and reading.others == 0.0 and reading.window == 1.0
    # a meter made a moment ago (one-shot's model load was quick) waits for the rest of a window
    fresh = cpu.LoadMeter(read_stat=stat, read_self=lambda: f"7 (a b) R {'0 ' * 10}{state['own']} 0 0 0",
                          cores=lambda: {0, 1}, clock=lambda: state["t"], sleep=sleep)
    state["t"] += 0.03
    reading = fresh.read()
    assert slept == [pytest.approx(fresh.min_window - 0.03)] and reading is not None
    assert reading.window == pytest.approx(fresh.min_window)
    fixed = cpu.ThreadPolicy(3, None)
    assert fixed.initial() == 3 and fixed.choose() == cpu.ThreadChoice(3, None, True)


def test_the_threads_flag_fixes_both_local_engines(tmp_path) -> None:
    from aigc_chat.cli import _load, build_parser

    args = build_parser().parse_args(["--threads", "3", "--config", str(tmp_path / "none.toml"), "-p", "x"])
    config = _load(args)
    assert config.backends["llama"]["n_threads"] == 3 and config.backends["torch"]["n_threads"] == 3
    r = subprocess.run([sys.executable, "-m", "aigc_chat", "--threads", "0", "-p", "x"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "--threads" in r.stderr and "Traceback" not in r.stderr
