"""What a hostile OpenAI-compatible server costs the installed CLI: a 4 MB gzip body that
inflates to 4 GiB, an endless /v1/models body, and an event stream of keep-alives only.

    .venv/bin/python bench/bench_server_bodies.py [--cap-gib 3]

Each case runs `aigc-chat` against tests/fault_server.py on 127.0.0.1 under an address-space
cap (so a build that reads bodies whole fails at the cap instead of filling the machine) and
prints the wall time, the peak RSS (from /usr/bin/time) and the line on stderr. The
keep-alive server stops after 20 s: a client that counts bytes, not text, waits that long.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fault_server import FaultServer  # noqa: E402
from tests.test_openai_bounds import gzip_bomb, keep_alive_forever  # noqa: E402

CLI = Path(sys.executable).parent / "aigc-chat"


def run(url: str, cap: int, *args: str, timeout: float = 60) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(f'backend = "openai"\nmodel = "m1"\n[openai]\nbase_url = "{url}"\n'
                       'api_key_env = ""\nread_timeout = 0.5\n')
        env = dict(os.environ, AIGC_CHAT_CONFIG=str(cfg), AIGC_CHAT_DATA_DIR=tmp)
        t0 = time.monotonic()
        try:
            p = subprocess.run(["/usr/bin/time", "-f", "%M", str(CLI), *args], capture_output=True, text=True,
                               timeout=timeout, env=env, stdin=subprocess.DEVNULL,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
        except subprocess.TimeoutExpired:
            return f"still running after {timeout:g} s"
        lines = p.stderr.strip().splitlines()
        said = next((line for line in lines if line.startswith("aigc-chat")), "")[:170]
        return (f"{time.monotonic() - t0:.2f} s, peak RSS {int(lines[-1]) / 1024:.0f} MiB, "
                f"exit {p.returncode}: {said}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap-gib", type=float, default=3.0, help="address-space cap of the CLI (GiB)")
    cap = int(ap.parse_args().cap_gib * (1 << 30))
    with FaultServer() as s:
        bomb = gzip_bomb(4096)
        s.get = lambda h: h.raw(200, "application/json", bomb, {"Content-Encoding": "gzip"})
        print(f"gzip body of {len(bomb) / 1e6:.1f} MB inflating to 4 GiB: {run(s.url, cap, 'models')}")
        s.get = lambda h: h.endless("application/json", b'{"id": "m", "object": "model"}, ' * 1000)
        print(f"endless /v1/models: {run(s.url, cap, 'models')}")
        s.get = None
        s.chat = lambda h, body: keep_alive_forever(h)
        print(f"keep-alives only, read_timeout 0.5 s: {run(s.url, cap, '-p', 'hi', timeout=40)}")


if __name__ == "__main__":
    main()
