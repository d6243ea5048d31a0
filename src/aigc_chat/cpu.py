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

import collections
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _read_small(path: Path, limit: int = 4096) -> str | None:
    """A kernel file's text, or None. These are small virtual files, nothing a user wrote
    (/proc/stat grows with the core count, so its reader allows more)."""
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("ascii", "replace")
    except OSError:
        return None


def _quota(text: str | None) -> float | None:
    """cgroup v2's cpu.max ("150000 100000", or "max 100000" for none) in cores."""
    parts = (text or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v2_files(root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """cpu.max of this process's cgroup and of each one above it: a quota anywhere up the
    tree (systemd's CPUQuota on a slice, a container's limit) caps what we get."""
    text = _read_small(Path("/proc/self/cgroup")) or ""
    for line in text.splitlines():
        if line.startswith("0::"):
            rel = Path(line[3:].strip().lstrip("/"))
            dirs = [root / rel, *(root / p for p in rel.parents)]
            return [d / "cpu.max" for d in dirs]
    return [root / "cpu.max"]


def cgroup_quota_cores(v2: Path | list[Path] | None = None, v1: tuple[Path, Path] = _CGROUP_V1) -> float | None:
    """The CPU time a quota allows, in cores (e.g. 1.5), or None when unlimited. A quota is a
    limit the affinity mask does not show: a `--cpus=1` container still sees every core, and
    threads sized by them are throttled in turn."""
    files = v2 if isinstance(v2, list) else [v2] if v2 is not None else _v2_files()
    texts = [_read_small(f) for f in files]
    if any(t is not None for t in texts):
        quotas = [q for q in (_quota(t) for t in texts) if q is not None]
        return min(quotas) if quotas else None
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
    """This process's user + system ticks, its threads' and its reaped children's, from
    /proc/self/stat (utime, stime, cutime, cstime: fields 14-17). A child's time moves into
    cutime/cstime when it is reaped, so with the live children added the sum never drops."""
    try:
        fields = self_stat.rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15])
    except (IndexError, ValueError):
        return None


def _children_ticks() -> int:
    """User + system ticks of this process's live children (the template renderer, a probe):
    our own work, not another process's load."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for tid in tasks:
        for pid in (_read_small(Path(f"/proc/self/task/{tid}/children")) or "").split():
            try:
                fields = (_read_small(Path(f"/proc/{pid}/stat")) or "").rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (IndexError, ValueError):
                continue
    return total


@dataclass(frozen=True)
class LoadReading:
    """Cores kept busy by other processes, over how long that was seen, and on how many cores."""

    others: float
    window: float  # seconds
    cores: int = 0  # how many cores were measured (the affinity mask); 0: not known


@dataclass(frozen=True)
class _Snapshot:
    t: float
    busy: int  # busy ticks of our cores, everyone's
    own: int  # this process's ticks, its children's included


PREFERRED_WINDOW = 0.5  # seconds: 50 ticks a core at 100 Hz, so 0.02 cores of resolution


class LoadMeter:
    """How many of this process's cores other processes kept busy in the last second or two:
    the busy time of those cores in /proc/stat minus this process's own (and its children's).

    A background thread takes a snapshot every `step` seconds (two small /proc reads, ~50 us),
    so a reading always covers the recent past: a compile that started a second ago counts,
    one that ended a minute ago does not. Where no snapshot is at least `min_window` old, the
    reading waits for the rest (a scheduler tick is 4-10 ms: a shorter window says too
    little). The readers are injectable: tests play a busy machine without making one (no
    thread runs then; `tick()` takes a snapshot)."""

    def __init__(self, *, read_stat: Callable[[], str | None] | None = None,
                 read_self: Callable[[], str | None] | None = None,
                 cores: Callable[[], set[int] | None] = affinity_cores,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 min_window: float = 0.1, step: float = 1.0, background: bool | None = None) -> None:
        injected = read_stat is not None or read_self is not None
        self._read_stat = read_stat or (lambda: _read_small(Path("/proc/stat"), 1 << 20))
        self._read_self = read_self or (lambda: _read_small(Path("/proc/self/stat")))
        self._children: Callable[[], int] = (lambda: 0) if injected else _children_ticks
        self._cores = cores
        self._clock = clock
        self._sleep = sleep
        self.min_window = min_window
        self.step = step
        self._ring: collections.deque[_Snapshot] = collections.deque(maxlen=4)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.tick()
        if background if background is not None else not injected:
            threading.Thread(target=self._run, name="aigc-load-meter", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self.step):
            self.tick()

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        """Take a snapshot now (the thread does, every `step` seconds)."""
        snap = self._snapshot()
        if snap is not None:
            with self._lock:
                self._ring.append(snap)

    def _snapshot(self) -> _Snapshot | None:
        stat, own = self._read_stat(), self._read_self()
        if stat is None or own is None:
            return None
        ticks = _busy_ticks(stat, self._cores())
        mine = _own_ticks(own)
        if ticks is None or mine is None:
            return None
        return _Snapshot(self._clock(), ticks[0], mine + self._children())

    def read(self) -> LoadReading | None:
        """Other processes' busy cores over the recent past (`min_window` to about two
        `step`s). None where /proc cannot tell (not Linux)."""
        now = self._snapshot()
        if now is None:
            return None
        with self._lock:  # the newest snapshot half a second old or more, else the oldest
            settled = [s for s in self._ring if now.t - s.t >= PREFERRED_WINDOW]
            base = settled[-1] if settled else (self._ring[0] if self._ring else None)
        if base is None:
            return None
        if now.t - base.t < self.min_window:  # too recent to say anything: wait for the rest
            self._sleep(self.min_window - (now.t - base.t))
            later = self._snapshot()
            if later is None:
                return None
            now = later
        window = now.t - base.t
        if window <= 0:
            return None
        others = ((now.busy - base.busy) - (now.own - base.own)) / _TICKS / window
        with self._lock:
            self._ring.append(now)
        mask = self._cores()
        return LoadReading(max(0.0, others), window, len(mask) if mask else 0)


# -- the choice --------------------------------------------------------------------------

_ui_reserve = 0

# A core counts as taken once other processes use more than half of one: a thread that shares
# its core stalls every barrier, so fewer, unshared threads are faster.
TAKEN = 0.5


def reserve_for_ui(cores: int) -> None:
    """A front end with a thread of its own that must stay responsive (the TUI) keeps this
    many cores away from the engine on small machines; set once at start."""
    global _ui_reserve
    _ui_reserve = max(0, cores)


def ui_reserve() -> int:
    return _ui_reserve


def engine_threads(cores: int, others: float | None, reserve: int | None = None, seen: int = 0) -> int:
    """Threads for the next reply: the usable cores (a cgroup quota caps them), less those kept
    for the UI (only on machines of 4 cores or fewer: past that, the default below leaves half
    free anyway), less those other processes are using. Past 4 cores, half of them (assume
    SMT siblings). `seen`: how many cores `others` was measured on (the affinity mask, which
    can be more than a quota's `cores`): what is free is what is left there, up to `cores`."""
    reserve = _ui_reserve if reserve is None else reserve
    base = cores if cores <= 4 else max(4, cores // 2)
    if cores <= 4:
        base = max(1, cores - reserve)
    if not others:
        return base
    free = min(float(cores), (seen or cores) - others) - reserve
    return max(1, min(base, math.floor(free + 1 - TAKEN)))


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
            seen = reading.cores if reading is not None else 0
            choice = ThreadChoice(engine_threads(self._cores(), others, seen=seen), others, False)
        self.last = choice
        return choice

    def reply_ended(self) -> None:
        """A snapshot at the end of a reply: the next reading need not wait for one."""
        if self.meter is not None:
            self.meter.tick()

    def close(self) -> None:
        if self.meter is not None:
            self.meter.stop()
