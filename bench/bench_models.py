"""How long `aigc-chat models` takes to list 200 GGUF files (target: <= 1 s).

The files are spread over the five places discovery looks (a models_dir, a Hugging Face hub
cache, LM Studio, llama.cpp's cache, an Ollama store with manifests), all in a temp dir with
every variable pointed there. Each file has a real-sized header: a 49,152-token vocabulary
and 48,900 merges like SmolLM2's (the part of a header that costs the most to step over), but
tiny tensors. The 200 are distinct files (each its own general.name, `bench-model-00007`), not
links to one: every header is read from its own pages, as on a real collection, and nothing
keyed by inode or content could shorten the first listing. ~2 MB each, ~400 MB in all in the
temp dir, removed at the end.

Printed: the first listing (no index yet: every header read), the next one (the index in
the cache dir is reused: one stat per file), and both through the installed command (the first
one there with the index removed before each run, so it pays for the imports too).

    python bench/bench_models.py [--files 200] [--vocab 49152]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _name(i: int) -> str:
    """general.name of file i: one width for all, so the copies differ only there."""
    return f"bench-model-{i:05d}"


def write_header_heavy(path: Path, vocab: int) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(_name(0))
    w.add_context_length(8192)
    w.add_block_count(1)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    w.add_token_merges([f"t{i} k{i}" for i in range(min(vocab, 48_900))])
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def build(root: Path, n: int, vocab: int) -> dict[str, str]:
    src = write_header_heavy(root / "source.gguf", vocab)
    data = src.read_bytes()
    assert data.count(_name(0).encode()) == 1
    mine, hub, lms, llama, ollama = (root / "mine", root / "hub", root / "home/.lmstudio/models",
                                     root / "llama", root / "ollama")
    for i in range(n):
        where = i % 5
        if where == 0:
            dst = mine / f"sub{i % 3}" / f"model-{i}.gguf"
        elif where == 1:
            dst = hub / f"models--org--repo{i}" / "snapshots" / "rev" / f"model-{i}-q4_k_m.gguf"
        elif where == 2:
            dst = lms / "publisher" / f"repo{i}" / f"model-{i}.gguf"
        elif where == 3:
            dst = llama / f"org_repo_model-{i}.gguf"
        else:
            digest = f"{i:064x}"
            dst = ollama / "blobs" / f"sha256-{digest}"
            man = ollama / "manifests" / "registry.ollama.ai" / "library" / f"model{i}" / "latest"
            man.parent.mkdir(parents=True, exist_ok=True)
            man.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                                   "digest": f"sha256:{digest}"}]}))
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data.replace(_name(0).encode(), _name(i).encode()))
    src.unlink()
    return {"HOME": str(root / "home"), "HF_HUB_CACHE": str(hub), "LLAMA_CACHE": str(llama),
            "OLLAMA_MODELS": str(ollama), "AIGC_CHAT_CACHE_DIR": str(root / "cache"),
            "AIGC_CHAT_CONFIG": str(root / "config.toml"), "mine": str(mine)}


def main() -> int:
    p = argparse.ArgumentParser(description="time model discovery over many GGUF files")
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--vocab", type=int, default=49_152)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = build(root, args.files, args.vocab)
        (root / "config.toml").write_text(f'models_dir = ["{env.pop("mine")}"]\n')
        os.environ.update(env)
        os.environ.pop("HF_HOME", None)
        os.environ.pop("LMSTUDIO_MODELS", None)
        from aigc_chat import discovery
        from aigc_chat.config import load_config

        cfg = load_config()
        t0 = time.perf_counter()
        entries = discovery.scan(cfg)
        cold = time.perf_counter() - t0
        found = len([e for e in entries if e.source != "bundled"])
        titles = len({e.title for e in entries if e.source != "bundled"})
        warm = []
        for _ in range(5):
            t0 = time.perf_counter()
            discovery.scan(cfg)
            warm.append(time.perf_counter() - t0)
        index = root / "cache" / "models-index.json"
        assert index.is_file(), index
        exe = Path(sys.executable).parent / "aigc-chat"
        cli_cold, cli = [], []
        for times in (cli_cold, cli):
            for _ in range(3):
                if times is cli_cold:
                    index.unlink()  # a first listing again, now with the imports it pays for
                t0 = time.perf_counter()
                r = subprocess.run([str(exe), "models", "--json"], capture_output=True, text=True,
                                   env=dict(os.environ))
                times.append(time.perf_counter() - t0)
                assert r.returncode == 0, r.stderr
        print(f"files: {found} found of {args.files}, {titles} distinct headers "
              f"(vocabulary {args.vocab:,} tokens each)")
        print(f"first listing, every header read: {cold:.2f} s ({cold / max(found, 1) * 1000:.1f} ms/file; "
              "target <= 1 s)")
        print(f"next listings, index reused: median {statistics.median(warm):.3f} s (target <= 1 s)")
        print("`aigc-chat models --json` (process start included): first listing median "
              f"{statistics.median(cli_cold):.2f} s, next median {statistics.median(cli):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
