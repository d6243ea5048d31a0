"""How many CPU cores this process may use: one answer for every thread count we pick."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on. The affinity mask is what a container, cgroup
    cpuset or `taskset` leaves us, and os.cpu_count() ignores it: threads sized by the
    machine's count would then queue for cores they cannot have."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux (macOS, Windows)
        n = os.cpu_count() or 1
    return max(1, n)
