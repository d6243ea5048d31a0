"""Our pull's overhead: `aigc-chat pull`'s code path against `huggingface_hub.hf_hub_download` alone.

One large GGUF (default 500 MB: a real header and one big tensor) is served by our hub server
(tests/hub_server.py) in a separate process on 127.0.0.1, so the server's Python does not
share a GIL with the client being timed. Then, in turns, each into its own empty hub cache:

- ours: `hub.plan` (the listing with sizes and sha256) + `hub.pull` (HEAD, the transfer into
  blobs/<etag>.incomplete with the sha256 computed as the bytes arrive, the size check, the
  GGUF header read, and `hf_hub_download` making the snapshot link);
- theirs: `hf_hub_download(repo, file)` alone (HEAD, transfer, move, link; no checksum).

Runs alternate (ours, theirs, ours, theirs...) so machine noise hits both alike; the table
gives every run and the medians side by side.

    .venv/bin/python bench/bench_pull.py [--size-mb 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPO_ID = "bench-org/Big-GGUF"
FILE = "Big-Q4_K_M.gguf"


def make_gguf(path: Path, size_mb: int) -> None:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.name", "bench")
    n = size_mb * 1_000_000 // 4
    w.add_tensor("t.weight", np.random.default_rng(0).integers(0, 255, n * 4, dtype=np.uint8).view(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def serve(path: str) -> None:
    """The child: serve the file and print the URL; stop when stdin closes."""
    sys.path.insert(0, str(ROOT))
    from tests.hub_server import HubServer, Repo

    HubServer.CHUNK = 1 << 20
    data = Path(path).read_bytes()
    with HubServer() as hub:
        hub.repos[REPO_ID] = Repo(files={FILE: data})
        print(hub.url, flush=True)
        sys.stdin.read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    server = None
    try:
        src = work / "big.gguf"
        make_gguf(src, args.size_mb)
        size = src.stat().st_size
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(src)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        os.environ["HF_ENDPOINT"] = url
        os.environ.pop("HF_HUB_OFFLINE", None)
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

        from huggingface_hub import constants, hf_hub_download

        from aigc_chat import hub, hub_ref

        their_chunk = constants.DOWNLOAD_CHUNK_SIZE
        times: dict[str, list[float]] = {"ours": [], "hf_hub_download": []}
        for i in range(args.runs):
            for who in times:
                cache = work / f"cache-{who}-{i}"
                t0 = time.perf_counter()
                if who == "ours":
                    path = hub.pull(hub.plan(hub_ref.parse_ref(f"hf:{REPO_ID}")), cache)
                else:
                    constants.DOWNLOAD_CHUNK_SIZE = their_chunk  # as shipped (ours sets 1 MiB)
                    path = Path(hf_hub_download(REPO_ID, FILE, cache_dir=str(cache), endpoint=url))
                times[who].append(time.perf_counter() - t0)
                assert path.stat().st_size == size, path
                shutil.rmtree(cache)
        mb = size / 1e6
        print(f"file {mb:.0f} MB served on 127.0.0.1 by tests/hub_server.py (another process), {args.runs} runs each")
        print(f"{'':<18}" + "".join(f"run {i + 1:<8}" for i in range(args.runs)) + "median      MB/s")
        for who, ts in times.items():
            med = statistics.median(ts)
            print(f"{who:<18}" + "".join(f"{t:<12.2f}" for t in ts) + f"{med:<12.2f}{mb / med:.0f}")
        ratio = statistics.median(times["ours"]) / statistics.median(times["hf_hub_download"])
        print(f"ours / hf_hub_download (medians): {ratio:.2f}x  (ours also verifies the sha256 and reads the header)")
    finally:
        if server is not None:
            server.communicate("", timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
