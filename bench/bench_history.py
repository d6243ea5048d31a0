"""History at scale: 10,000 conversations, 200,000 messages; how fast does the pane open, how
fast is a search?

    .venv/bin/python bench/bench_history.py [--conversations 10000] [--messages 200000] [--db PATH]

How the data goes in: through the store's own connection (`HistoryStore.connection`), in one
`BEGIN IMMEDIATE` transaction with `executemany`, with the FTS triggers live, so the indexes
are built exactly as normal use builds them (nothing is dropped or rebuilt by hand). The
text is deterministic pseudo-English (Zipf-distributed vocabulary, seed 7), with one rare
word planted in 20 messages and common words everywhere.

What is timed (each a median of several runs, on a freshly opened store):
- open: `HistoryStore(path)` on the existing file (the TUI pays this at start-up);
- pane: `list_conversations(limit=500)` plus `get_conversation()` of the newest one;
- search: `search(q, limit=100)` for a rare word, a common word, two words, a prefix (the
  TUI's search-as-you-type), and a query with FTS syntax in it (taken literally).
Targets: pane <= 0.5 s, each search <= 100 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aigc_chat.history import HistoryStore

RARE = "quixotically"
N_RARE = 20


def _vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    common = ("the of and to a in is it you that he was for on are with as I his they be at one "
              "have this from or had by hot word but what some we can out other were all there "
              "when up use your how said an each she which do their time if will way about many "
              "then them write would like so these her long make thing see him two has look more "
              "day could go come did number sound no most people my over know water than call "
              "first who may down side been now find model python code error function").split()
    letters = "abcdefghijklmnopqrstuvwxyz"
    made = {"".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(size)}
    made.discard(RARE)
    return common + sorted(made)


def _texts(rng: random.Random, vocab: list[str], n: int) -> list[str]:
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf: a few words everywhere
    out = []
    for _ in range(n):
        words = rng.choices(vocab, weights=weights, k=rng.randint(8, 80))
        out.append(" ".join(words).capitalize() + ".")
    return out


def populate(store: HistoryStore, n_conv: int, n_msg: int, seed: int = 7) -> float:
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    t0 = time.perf_counter()
    conn = store.connection
    base = time.time() - n_conv * 60
    texts = _texts(rng, vocab, n_msg)
    for i in rng.sample(range(n_msg), N_RARE):
        texts[i] += f" {RARE}"
    per = n_msg // n_conv
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO conversations (id, title, model, backend, settings, created_at, updated_at)"
        " VALUES (?, ?, 'gemma-3-270m-q4_k_m.gguf', 'llama', '{}', ?, ?)",
        ((c + 1, texts[c * per][:60], base + c * 60, base + c * 60 + 30) for c in range(n_conv)),
    )
    conn.executemany(
        "INSERT INTO messages (conversation_id, role, content, created_at, finish_reason, stats)"
        " VALUES (?, ?, ?, ?, ?, '{}')",
        (
            (min(i // per, n_conv - 1) + 1, "user" if i % 2 == 0 else "assistant", texts[i],
             base + (i // per) * 60 + i % per, None if i % 2 == 0 else "stop")
            for i in range(n_msg)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA optimize")
    return time.perf_counter() - t0


def _median(fn, runs: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conversations", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--db", type=Path, help="reuse/keep this database (default: a temporary one)")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args(argv)
    tmp = None
    if a.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="aigc-bench-history-")
        a.db = Path(tmp.name) / "history.sqlite3"
    fresh = not a.db.exists()
    store = HistoryStore(a.db)
    if fresh:
        took = populate(store, a.conversations, a.messages)
        print(f"bulk insert: {a.conversations} conversations, {a.messages} messages in {took:.1f} s "
              f"(one transaction, triggers live), file {a.db.stat().st_size / 1e6:.0f} MB")
    store.close()

    t_open, store = _median(lambda: HistoryStore(a.db), 1)
    t0 = time.perf_counter()
    convs = store.list_conversations(limit=500)
    t_list = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = store.get_conversation(convs[0].id)
    t_first = time.perf_counter() - t0
    print(f"cold open {t_open * 1000:.1f} ms, first list_conversations(500) {t_list * 1000:.1f} ms, "
          f"first get_conversation ({len(first.messages)} messages) {t_first * 1000:.1f} ms")

    def pane():
        cs = store.list_conversations(limit=500)
        return cs, store.get_conversation(cs[0].id)

    t_pane, _ = _median(pane, a.runs)
    print(f"pane (list 500 + newest conversation): median {t_pane * 1000:.1f} ms "
          f"(target <= 500 ms) {'OK' if t_pane <= 0.5 else 'SLOW'}")

    queries = [(RARE, "rare word", False), ("the", "common word", False),
               ("python error", "two words", False), ("wat", "prefix (as you type)", True),
               ('water" AND [bold] *', "FTS syntax, literal", False)]
    worst = 0.0
    for q, label, prefix in queries:
        t, hits = _median(lambda q=q, p=prefix: store.search(q, limit=100, prefix=p), a.runs)
        worst = max(worst, t)
        print(f"search {label:<20} {q!r:<24} median {t * 1000:7.1f} ms, {len(hits)} hits")
    print(f"worst search median {worst * 1000:.1f} ms (target <= 100 ms) {'OK' if worst <= 0.1 else 'SLOW'}")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    store.close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
