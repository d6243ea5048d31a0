"""How many CPU threads an engine should run: what this process may use, and what the
other processes on the machine are using right now.

Why this exists: llama.cpp's (and torch's) worker threads meet at a barrier after every
operation, and OpenMP threads spin while they wait. When other processes keep the cores
busy, a thread that loses its core holds every other one at the next barrier: on 2 cores
beside two busy processes, 2 threads decoded at 0.6-5 tok/s where 1 thread kept a useful
rate (docs/performance.md). So the count is chosen before every reply from a measurement,
not once from the machine's size: all usable cores when they are free, fewer when others
have them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _read_small(path: Path) -> str | None:
    """A kernel file's text, or None. These are tiny virtual files; nothing a user wrote."""
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("ascii", "replace")
    except OSError:
        return None


def cgroup_quota_cores(v2: Path = _CGROUP_V2, v1: tuple[Path, Path] = _CGROUP_V1) -> float | None:
    """The CPU time a container's quota allows, in cores (e.g. 1.5), or None when unlimited.
    A quota is a limit the affinity mask does not show: a `--cpus=1` container still sees
    every core, and threads sized by them are throttled in turn."""
    text = _read_small(v2)
    if text is not None:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota, period = int(parts[0]), int(parts[1])
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
        return None
    quota_text, period_text = _read_small(v1[0]), _read_small(v1[1])
    try:
        quota = int((quota_text or "").strip())
        period = int((period_text or "").strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def affinity_cores() -> set[int] | None:
    """The cores the affinity mask (taskset, a cpuset) leaves this process, or None off Linux."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux (macOS, Windows)
        return None


def usable_cores() -> int:
    """The cores this process may run on: the affinity mask (os.cpu_count() ignores it),
    capped by a cgroup CPU quota, rounded up (1.5 cores of quota still runs 2 threads)."""
    mask = affinity_cores()
    n = len(mask) if mask is not None else (os.cpu_count() or 1)
    quota = cgroup_quota_cores()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


# -- what the rest of the machine is doing -----------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_ticks(stat: str, cores: set[int] | None) -> tuple[int, int] | None:
    """(busy, total) clock ticks of the given cores from /proc/stat ("cpuN user nice system
    idle iowait irq softirq steal ..."); all cores when `cores` is None."""
    busy = total = 0
    seen = False
    for line in stat.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        try:
            index = int(name[3:])
            values = [int(v) for v in fields[:8]]
        except ValueError:
            continue
        if cores is not None and index not in cores:
            continue
        if len(values) < 8:
            continue
        idle = values[3] + values[4]
        busy += sum(values) - idle
        total += sum(values)
        seen = True
    return (busy, total) if seen else None


def _own_ticks(self_stat: str) -> int | None:
    """This process's user + system ticks (all its threads) from /proc/self/stat."""
    try:
        fields = self_stat.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    except (IndexError, ValueError):
        return None


def _procs_running(stat: str) -> int | None:
    for line in stat.splitlines():
        if line.startswith("procs_running"):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


@dataclass(frozen=True)
class LoadReading:
    """Cores kept busy by other processes, and over how long that was seen."""

    others: float
    window: float  # seconds; 0 for an instantaneous count


class LoadMeter:
    """Measures how many of this process's cores other processes kept busy since the last
    reading: the busy time of those cores in /proc/stat minus this process's own time.

    A window shorter than `min_window` says too little (a scheduler tick is 4-10 ms), so
    the meter then falls back to the number of runnable tasks right now. Reading costs two
    small /proc reads (~50 us), so it runs before every reply. The readers are injectable:
    tests play a busy machine without making one."""

    def __init__(self, *, read_stat: Callable[[], str | None] | None = None,
                 read_self: Callable[[], str | None] | None = None,
                 cores: Callable[[], set[int] | None] = affinity_cores,
                 clock: Callable[[], float] = time.monotonic, min_window: float = 0.25) -> None:
        self._read_stat = read_stat or (lambda: _read_small_big(Path("/proc/stat")))
        self._read_self = read_self or (lambda: _read_small(Path("/proc/self/stat")))
        self._cores = cores
        self._clock = clock
        self.min_window = min_window
        self._last: tuple[float, int, int] | None = None  # (time, busy ticks, own ticks)
        self._lock = threading.Lock()
        self.mark()

    def mark(self) -> None:
        """Start a new window now (e.g. when a reply ends: the engine's own time is not load)."""
        with self._lock:
            self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, int, int] | None:
        stat, own = self._read_stat(), self._read_self()
        if stat is None or own is None:
            return None
        ticks = _busy_ticks(stat, self._cores())
        mine = _own_ticks(own)
        if ticks is None or mine is None:
            return None
        return (self._clock(), ticks[0], mine)

    def read(self) -> LoadReading | None:
        """Other processes' busy cores since the last mark, then a new window starts. None
        where /proc cannot tell (not Linux)."""
        with self._lock:
            now = self._snapshot()
            last, self._last = self._last, now
        if now is None:
            return None
        if last is not None and now[0] - last[0] >= self.min_window:
            window = now[0] - last[0]
            others = ((now[1] - last[1]) - (now[2] - last[2])) / _TICKS / window
            return LoadReading(max(0.0, others), window)
        stat = self._read_stat()
        running = _procs_running(stat) if stat is not None else None
        if running is None:
            return None
        mask = self._cores()
        limit = len(mask) if mask is not None else (os.cpu_count() or 1)
        # procs_running counts the whole machine and includes this thread, which is reading.
        return LoadReading(float(min(limit, max(0, running - 1))), 0.0)


def _read_small_big(path: Path) -> str | None:
    """/proc/stat grows with the core count (a line per core, plus interrupt counts)."""
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode("ascii", "replace")
    except OSError:
        return None


# -- the choice --------------------------------------------------------------------------

_ui_reserve = 0


def reserve_for_ui(cores: int) -> None:
    """A front end with a thread of its own that must stay responsive (the TUI) keeps this
    many cores away from the engine on small machines; set once at start."""
    global _ui_reserve
    _ui_reserve = max(0, cores)


def ui_reserve() -> int:
    return _ui_reserve


def engine_threads(cores: int, others: float | None, reserve: int | None = None) -> int:
    """Threads for the next reply: the usable cores, less those kept for the UI (only on
    machines of 4 cores or fewer: past that, the default below leaves half free anyway), less
    those other processes are using. Past 4 cores, half of them (assume SMT siblings)."""
    reserve = _ui_reserve if reserve is None else reserve
    base = cores if cores <= 4 else max(4, cores // 2)
    if cores <= 4:
        base = max(1, cores - reserve)
    if not others:
        return base
    # A core counts as taken when another process used 70% of one: a thread that shares
    # its core stalls every barrier, so fewer, unshared threads are faster.
    free = cores - reserve - others
    return max(1, min(base, math.floor(free + 0.3)))


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    others: float | None  # the load it was chosen for (None: not measurable here)
    fixed: bool  # set by the user: never changed


class ThreadPolicy:
    """One engine's thread count, re-chosen before each reply unless the user fixed it
    (`--threads`, `[llama] n_threads`, `[torch] n_threads`)."""

    def __init__(self, fixed: int = 0, meter: LoadMeter | None = None,
                 cores: Callable[[], int] = usable_cores) -> None:
        self.fixed = fixed
        self.meter = meter if meter is not None or fixed else LoadMeter()
        self._cores = cores
        self.last: ThreadChoice | None = None

    def initial(self) -> int:
        """The count to load the engine with, before anything is measured."""
        if self.fixed:
            return self.fixed
        return engine_threads(self._cores(), None)

    def choose(self) -> ThreadChoice:
        if self.fixed:
            choice = ThreadChoice(self.fixed, None, True)
        else:
            assert self.meter is not None
            reading = self.meter.read()
            others = reading.others if reading is not None else None
            choice = ThreadChoice(engine_threads(self._cores(), others), others, False)
        self.last = choice
        return choice

    def reply_ended(self) -> None:
        """The engine's own busy time must not count as load: start the window afresh."""
        if self.meter is not None:
            self.meter.mark()
