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
