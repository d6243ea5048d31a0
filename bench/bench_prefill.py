"""Where users wait: prompt reading, and replies on a busy CPU. Ratios, side by side, one run.

Part 1, prompt reading (tok/s at 512, 2,000 and 7,000 tokens; default model and Gemma 3 270M):
  shipped  raw llama-cpp-python as aigc-chat ran it on 2026-12-07: the file as shipped, one
           thread per core, extra buffers off on AMX CPUs, no flash attention, one eval() call;
  best     the best raw llama-cpp-python configuration found on this machine (the file
           requantised to Q8_0 where it is Q4_1, extra buffers on, flash attention on);
  ours     LlamaCppBackend as the product loads it (Q8_0 copy, probe-decided extra buffers,
           threads chosen for the reply), read in batches with progress; its own rate.
Part 2, one-shot replies, quiet and beside two busy processes (kept running until both runs
  end): first token and decode rate of `aigc-chat -p ... --json` against raw
  llama-cpp-python in the shipped configuration, each a fresh process.

    .venv/bin/python bench/bench_prefill.py            # everything (~10 min on 2 cores)
    .venv/bin/python bench/bench_prefill.py --quick    # 512 and 2,000 tokens, default model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "README.md").read_text() + (ROOT / "docs" / "architecture.md").read_text()

RAW_PREFILL = r"""
import ctypes, json, sys, time, llama_cpp
path, n, threads, extra, fa = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1"
cb = llama_cpp.llama_log_callback(lambda l, t, u: None); llama_cpp.llama_log_set(cb, ctypes.c_void_p(0))
lib = llama_cpp.llama_cpp; orig = lib.llama_model_default_params
def mp():
    p = orig(); p.use_extra_bufts = extra; return p
lib.llama_model_default_params = mp
llm = llama_cpp.Llama(model_path=path, n_ctx=8192, n_batch=512, n_threads=threads, n_threads_batch=threads,
                      flash_attn=fa, verbose=False)
text = open(sys.argv[6]).read()
toks = llm.tokenize(text.encode(), add_bos=True)
while len(toks) < n:
    toks += toks[1:]
toks = toks[:n]
t = time.perf_counter(); llm.eval(toks); dt = time.perf_counter() - t
t = time.perf_counter()
for tok in toks[:16]:
    llm.eval([tok])
print(json.dumps({"rate": n / dt, "decode": 16 / (time.perf_counter() - t)}))
"""

OURS_PREFILL = r"""
import json, sys
from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend
from aigc_chat.chat_types import Message
from aigc_chat.params import GenerationParams
model, n = sys.argv[1] or None, int(sys.argv[2])
b = LlamaCppBackend(model, {"n_ctx": 8192})
b.load()
text = open(sys.argv[3]).read()
# a user message of about n tokens: the template adds a few
words = text.split()
msg = ""
lo, hi = 0, len(words)
while len(b.tokenize_messages([Message("user", " ".join(words[:hi]))])) < n:
    words += words; hi = len(words)
while lo < hi:
    mid = (lo + hi) // 2
    if len(b.tokenize_messages([Message("user", " ".join(words[:mid]))])) < n:
        lo = mid + 1
    else:
        hi = mid
r = b.stream_chat([Message("user", " ".join(words[:lo]))], GenerationParams(temperature=0, max_tokens=1)).consume()
d = b.info().details
print(json.dumps({"rate": r.prompt_tokens_per_s, "tokens": r.prompt_tokens, "threads": d["threads"],
                  "note": d["file_note"], "extra": d["extra_buffers_why"]}))
"""

RAW_REPLY = r"""
import ctypes, json, sys, time, llama_cpp
path, threads, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
cb = llama_cpp.llama_log_callback(lambda l, t, u: None); llama_cpp.llama_log_set(cb, ctypes.c_void_p(0))
lib = llama_cpp.llama_cpp; orig = lib.llama_model_default_params
def mp():
    p = orig(); p.use_extra_bufts = extra; return p
lib.llama_model_default_params = mp
llm = llama_cpp.Llama(model_path=path, n_ctx=8192, n_threads=threads, n_threads_batch=threads, verbose=False)
toks = llm.tokenize(b"<|im_start|>user\nWrite a short paragraph about the sea.<|im_end|>\n<|im_start|>assistant\n",
                    add_bos=False, special=True)
t0 = time.perf_counter(); first = last = None; k = 0
for tok in llm.generate(toks, temp=0.0):
    now = time.perf_counter()
    if first is None: first = now
    last = now; k += 1
    if k >= 32: break
print(json.dumps({"ttft": first - t0, "decode": (k - 1) / (last - first)}))
"""


def run_py(code: str, *args: str, timeout: float = 900) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ours_reply(env: dict[str, str]) -> dict:
    cli = Path(sys.executable).parent / "aigc-chat"
    r = subprocess.run([str(cli), "-p", "Write a short paragraph about the sea.", "-n", "32", "-t", "0",
                        "--json", "--no-history"], capture_output=True, text=True, timeout=900, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    rec = json.loads(r.stdout)
    return {"ttft": rec["timings"]["time_to_first_token_s"], "decode": rec["timings"]["decode_tokens_per_s"]}


def cpu_facts() -> str:
    name, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", "x86_64"):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    keys = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"]
    return f"{name}; {os.cpu_count()} cores; " + " ".join(k for k in keys if k in flags)


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # each row as it is measured
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=2, help="runs per cell; the best is kept")
    ap.add_argument("--lengths", type=int, nargs="+", default=None, help="prompt lengths (default 512 2000 7000)")
    ap.add_argument("--fa-only", action="store_true", help="only the flash-attention table")
    ap.add_argument("--gemma-lengths", type=int, nargs="+", default=None, help="for Gemma (default: --lengths)")
    args = ap.parse_args()
    os.environ.setdefault("AIGC_CHAT_CACHE_DIR", str(ROOT / ".test-cache"))
    sys.path.insert(0, str(ROOT / "src"))
    import llama_cpp

    from aigc_chat.backends.extra_buffers import cpu_has_amx
    from aigc_chat.backends.llama_cpp_backend import install_quiet_logger
    from aigc_chat.backends.requantize import fast_copy, wants_copy
    from aigc_chat.cpu import usable_cores
    from aigc_chat.default_model import ensure_default_model, ensure_gemma
    from aigc_chat.gguf_info import read_gguf_info

    install_quiet_logger(llama_cpp)  # llama_model_quantize logs through it
    cores = usable_cores()
    print(f"CPU: {cpu_facts()}")
    print(f"llama.cpp {llama_cpp.__version__}: {llama_cpp.llama_print_system_info().decode().strip()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}; load before: {os.getloadavg()[0]:.2f}")
    text_file = Path(tempfile.mkdtemp()) / "text.txt"
    text_file.write_text(TEXT * 4)
    shipped_extra = "0" if cpu_has_amx() else "1"

    lengths = args.lengths or ([512, 2000] if args.quick else [512, 2000, 7000])
    models = [("default (SmolLM2 Q4_1)", ensure_default_model(), "", lengths)]
    if not args.quick:
        models.append(("gemma3-270m (Q4_K_M)", ensure_gemma(), None, args.gemma_lengths or lengths))
    print(f"\n== Prompt reading, tok/s (best of {args.rounds}; ratio to shipped in brackets)")
    print(f"{'model':<24} {'tokens':>6} {'shipped':>9} {'best raw':>16} {'ours':>16}  ours/best")
    for label, path, ours_model, model_lengths in [] if args.fa_only else models:
        # the best raw file: the Q8_0 copy where the product makes one (Q4_1), else the file itself
        best_file = fast_copy(path, llama_cpp, lambda _m: None)[0] if wants_copy(read_gguf_info(path), 0) else path
        for n in model_lengths:
            cells: dict[str, float] = {}
            detail = ""
            for _ in range(args.rounds):  # interleaved, so a burst of load hits all of them
                shipped = run_py(RAW_PREFILL, str(path), str(n), str(cores), shipped_extra, "0", str(text_file))
                best = max((run_py(RAW_PREFILL, str(best_file), str(n), str(t), "1", "1", str(text_file))
                            for t in sorted({1, cores})), key=lambda r: r["rate"])
                ours = run_py(OURS_PREFILL, str(ours_model if ours_model is not None else path), str(n),
                              str(text_file))
                detail = f"threads {ours['threads']}"
                for k, v in (("shipped", shipped["rate"]), ("best", best["rate"]), ("ours", ours["rate"])):
                    cells[k] = max(cells.get(k, 0.0), v)
            s = cells["shipped"]
            print(f"{label:<24} {n:>6} {s:>9.0f} {cells['best']:>8.0f} ({cells['best'] / s:.2f}x)"
                  f" {cells['ours']:>8.0f} ({cells['ours'] / s:.2f}x)  {cells['ours'] / cells['best']:.2f}  {detail}")

    print(f"\n== Flash attention on the CPU: raw, {cores} threads (best of {args.rounds}; "
          "tok/s, decode at that context)")
    print(f"{'model':<24} {'tokens':>6} {'read off':>9} {'read on':>9} {'decode off':>11} {'decode on':>10}")
    for label, path, _ours, model_lengths in models:
        file = fast_copy(path, llama_cpp, lambda _m: None)[0] if wants_copy(read_gguf_info(path), 0) else path
        for n in model_lengths[:2]:
            fa: dict[str, dict[str, float]] = {"0": {}, "1": {}}
            for _ in range(args.rounds):
                for flag in ("0", "1"):
                    r = run_py(RAW_PREFILL, str(file), str(n), str(cores), "1", flag, str(text_file))
                    for k in ("rate", "decode"):
                        fa[flag][k] = max(fa[flag].get(k, 0.0), r[k])
            print(f"{label:<24} {n:>6} {fa['0']['rate']:>9.0f} {fa['1']['rate']:>9.0f} "
                  f"{fa['0']['decode']:>11.1f} {fa['1']['decode']:>10.1f}")
    if args.fa_only:
        return 0

    print(f"\n== One-shot replies on the default model: 32 tokens, greedy (best of {args.rounds})")
    path = ensure_default_model()
    env = {**os.environ, "AIGC_CHAT_CONFIG": str(text_file.parent / "none.toml"),
           "AIGC_CHAT_DATA_DIR": str(text_file.parent / "data")}
    table: dict[tuple[str, str], dict] = {}
    for state in ("quiet", "beside 2 busy processes"):
        procs = busy(2) if state != "quiet" else []
        try:
            if procs:
                time.sleep(1.0)  # let the load settle before the first run (it stays until both end)
            for _ in range(args.rounds):
                for who, fn in (("shipped raw", lambda: run_py(RAW_REPLY, str(path), str(cores), shipped_extra)),
                                ("ours", lambda: ours_reply(env))):
                    r = fn()
                    cell = table.setdefault((state, who), {"ttft": 1e9, "decode": 0.0})
                    cell["ttft"] = min(cell["ttft"], r["ttft"])
                    cell["decode"] = max(cell["decode"], r["decode"] or 0.0)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    for who in ("shipped raw", "ours"):
        q, b = table[("quiet", who)], table[("beside 2 busy processes", who)]
        print(f"{who:<12} quiet: first token {q['ttft']:.2f} s, decode {q['decode']:.1f} tok/s | busy: first token "
              f"{b['ttft']:.2f} s ({b['ttft'] / q['ttft']:.1f}x quiet), decode {b['decode']:.1f} tok/s "
              f"({b['decode'] / q['decode']:.2f}x quiet)")
    ours_q, raw_q = table[("quiet", "ours")], table[("quiet", "shipped raw")]
    print(f"quiet decode, ours / shipped raw: {ours_q['decode'] / raw_q['decode']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
