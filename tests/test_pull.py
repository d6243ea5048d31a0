"""`aigc-chat pull` against our hub server (tests/hub_server.py) with the real huggingface_hub.

In process where that is enough (HF_ENDPOINT and the cache are read when our code runs, not
at import), as a subprocess where the user meets it: the exit code, the one error line, the
progress on a pipe, Ctrl-C.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigc_chat import discovery, hub, hub_ref
from aigc_chat.errors import AigcError, UsageError
from tests.hub_server import HubServer, Repo
from tests.tiny_gguf import CHATML, write_raw_gguf, write_tiny_gguf
from tests.waiting import wait_for

pytest.importorskip("huggingface_hub")

REPO = "tiny-org/Tiny-GGUF"
SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("ggufs")
    chat = {"tokenizer.chat_template": CHATML}
    out = {
        "Tiny-Q4_K_M.gguf": write_tiny_gguf(d / "a.gguf", "llama", seed=1, extra=chat).read_bytes(),
        "Tiny-Q8_0.gguf": write_tiny_gguf(d / "b.gguf", "llama", seed=2, extra=chat).read_bytes(),
        "big/Tiny-F16-00001-of-00002.gguf": write_tiny_gguf(d / "c1.gguf", "llama", seed=3,
                                                            extra={**chat, "split.count": 2}).read_bytes(),
        "big/Tiny-F16-00002-of-00002.gguf": write_raw_gguf(d / "c2.gguf", "llama", split=(1, 2)).read_bytes(),
    }
    return out


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 3 MiB GGUF: several of the 1 MiB chunks the client reads, so a cut or a pause falls mid-file."""
    import gguf
    import numpy as np

    path = tmp_path_factory.mktemp("big") / "big.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("tokenizer.chat_template", CHATML)
    w.add_tensor("t.weight", np.random.default_rng(0).standard_normal(3 * 1024 * 256).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.fixture
def server(ggufs: dict[str, bytes]) -> Iterator[HubServer]:
    with HubServer() as srv:
        srv.repos[REPO] = Repo(files={**ggufs, "README.md": b"# tiny\n"})
        yield srv


@pytest.fixture
def env(server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LLAMA_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("LMSTUDIO_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "none"))
    return dict(os.environ)


def _cli(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:
    e = {**env, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "aigc_chat", *args], env=e, capture_output=True, text=True,
                          timeout=60, **kw)


def _error_line(r: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The run failed with `code` and one error line, the last thing on stderr, and no traceback."""
    assert r.returncode == code, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("aigc-chat: error:")]
    assert len(errors) == 1 and r.stderr.splitlines()[-1] == errors[0], r.stderr
    assert "Traceback" not in r.stderr
    return errors[0]


def _listed(env: dict[str, str]) -> list[discovery.Found]:
    return [f for f in discovery.scan(None, env, use_index=False) if f.source == "huggingface"]


def _pull(ref: str) -> Path:
    r = hub_ref.parse_ref(ref)
    return hub.pull(hub.plan(r))


# -- references and file choice (no server) ----------------------------------------------


def test_parse_refs() -> None:
    assert hub_ref.parse_ref("hf:a/b") == hub_ref.HubRef("a/b")
    assert hub_ref.parse_ref("a/b:q8_0") == hub_ref.HubRef("a/b", "q8_0")
    assert hub_ref.parse_ref("hf:a/b/sub/F-Q4_K_M.gguf") == hub_ref.HubRef("a/b", None, "sub/F-Q4_K_M.gguf")
    for bad in ("hf:", "hf:a", "hf:a/b/c", "hf:../b", "hf:a/b:Q4 K", "hf:a/b/../x.gguf", "hf:a/b:\x1b[2J",
                "hf:a/b//x.gguf"):
        with pytest.raises(UsageError):
            hub_ref.parse_ref(bad)


def test_quant_names_and_unsafe_names() -> None:
    assert hub_ref.quant_of("Qwen3-8B-Q4_K_M.gguf") == "Q4_K_M"
    assert hub_ref.quant_of("x/Llama-3-70B-Q8_0-00001-of-00002.gguf") == "Q8_0"
    assert hub_ref.quant_of("model.iq4_xs.gguf") == "IQ4_XS"
    assert hub_ref.quant_of("Qwen3-UD-Q4_K_XL.gguf") == "UD-Q4_K_XL"
    assert hub_ref.quant_of("gemma-3-270m-it-BF16.gguf") == "BF16"
    assert hub_ref.quant_matches("q4_k_xl", "UD-Q4_K_XL")
    for bad in ("../x.gguf", "/etc/x.gguf", "a/../../x.gguf", "a\x1b[2Jb.gguf", "a\\b.gguf", "a//b.gguf",
                "C:x.gguf", "a\u202eb.gguf"):
        assert hub_ref.unsafe_name(bad), bad
    assert hub_ref.unsafe_name("Q8_0/M-Q8_0-00001-of-00002.gguf") == ""


# -- pulling --------------------------------------------------------------------------------


def test_pull_default_quant_lands_in_the_hub_cache_and_is_listed(env: dict[str, str], server: HubServer,
                                                                ggufs: dict[str, bytes]) -> None:
    r = _cli(["pull", f"hf:{REPO}"], env)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    cache = Path(env["HF_HUB_CACHE"])
    assert path == cache / "models--tiny-org--Tiny-GGUF" / "snapshots" / server.repos[REPO].commit / "Tiny-Q4_K_M.gguf"
    assert path.is_symlink() and path.read_bytes() == ggufs["Tiny-Q4_K_M.gguf"]
    sha = hashlib.sha256(ggufs["Tiny-Q4_K_M.gguf"]).hexdigest()
    assert path.resolve() == (cache / "models--tiny-org--Tiny-GGUF" / "blobs" / sha).resolve()
    assert (cache / "models--tiny-org--Tiny-GGUF" / "refs" / "main").read_text() == server.repos[REPO].commit
    assert "ready" in r.stderr and "100%" in r.stderr  # a line per 10% on a pipe
    assert sum("%" in line for line in r.stderr.splitlines()) == 10
    listed = _listed(env)
    assert [(f.name, f.label, f.kind) for f in listed] == [("tiny-q4_k_m", REPO, "chat")]
    # A second pull finds it: nothing is fetched again.
    before = len(server.requests_for("Tiny-Q4_K_M.gguf"))
    again = _cli(["pull", f"{REPO}:Q4_K_M", "-q"], env)
    assert again.returncode == 0 and Path(again.stdout.strip()) == path
    assert len(server.requests_for("Tiny-Q4_K_M.gguf")) == before


def test_split_model_downloads_as_one(env: dict[str, str], ggufs: dict[str, bytes]) -> None:
    path = _pull(f"hf:{REPO}:F16")
    assert path.name == "Tiny-F16-00001-of-00002.gguf"
    assert (path.parent / "Tiny-F16-00002-of-00002.gguf").read_bytes() == ggufs["big/Tiny-F16-00002-of-00002.gguf"]
    (entry,) = _listed(env)
    assert entry.parts == 2 and entry.error == ""
    # naming the file works too, and a later part alone is refused with the reason
    assert _pull(f"hf:{REPO}/big/Tiny-F16-00001-of-00002.gguf") == path
    with pytest.raises(UsageError, match="part 2 of a split model"):
        hub.plan(hub_ref.parse_ref(f"hf:{REPO}/big/Tiny-F16-00002-of-00002.gguf"))


def test_unknown_quant_and_no_default_list_the_quants(env: dict[str, str], server: HubServer,
                                                      ggufs: dict[str, bytes]) -> None:
    r = _cli(["pull", f"hf:{REPO}:Q3_K_S"], env)
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert "has no Q3_K_S file" in line and "Q4_K_M, Q8_0, F16" in line
    server.repos["o/no-default"] = Repo(files={"M-Q8_0.gguf": ggufs["Tiny-Q8_0.gguf"]})
    with pytest.raises(UsageError, match=r"no Q4_K_M \(the default\); its quants: Q8_0"):
        hub.plan(hub_ref.parse_ref("hf:o/no-default"))
    server.repos["o/no-gguf"] = Repo(files={"model.safetensors": b"x" * 10, "README.md": b"hi"})
    r = _cli(["pull", "hf:o/no-gguf"], env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "has no GGUF model file" in r.stderr


def test_404_401_gated_one_line_each(env: dict[str, str], server: HubServer, ggufs: dict[str, bytes]) -> None:
    r = _cli(["pull", "hf:nobody/nothing"], env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no model repo nobody/nothing" in r.stderr
    r = _cli(["pull", f"hf:{REPO}/Missing-Q4_K_M.gguf"], env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "has no file Missing-Q4_K_M.gguf" in r.stderr
    server.repos["o/private"] = Repo(files={"P-Q4_K_M.gguf": ggufs["Tiny-Q4_K_M.gguf"]}, token="s3cret")
    r = _cli(["pull", "hf:o/private"], env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "access denied (401)" in r.stderr and "HF_TOKEN" in r.stderr
    # gated: the listing is public, the files answer 403 GatedRepo without the token
    server.repos["o/gated"] = Repo(files={"G-Q4_K_M.gguf": ggufs["Tiny-Q4_K_M.gguf"]}, gated="t0ken")
    line = _error_line(_cli(["pull", "hf:o/gated"], env))
    assert "is gated" in line and "HF_TOKEN" in line
    assert _listed(env) == []
    # with the token, the private repo comes
    r = _cli(["pull", "hf:o/private", "-q"], {**env, "HF_TOKEN": "s3cret"})
    assert r.returncode == 0, r.stderr
    assert _cli(["pull", "hf:o/gated", "-q"], {**env, "HF_TOKEN": "t0ken"}).returncode == 0
    assert any(req.auth == "Bearer s3cret" for req in server.log if req.path.startswith("/o/private/resolve/"))
    # the token goes to the hub, never to the CDN a file redirects to
    assert [req.auth for req in server.log if req.path.startswith("/cdn/o/private/")] == [None]


MIB = 1 << 20


def test_interrupted_transfer_resumes_with_a_range(env: dict[str, str], server: HubServer, big: bytes) -> None:
    """The connection drops mid-file: huggingface_hub's retry continues from the last whole chunk."""
    name = "Big-Q4_K_M.gguf"
    server.repos["o/big"] = Repo(files={name: big}, cut_once={name: MIB + 1000})
    r = _cli(["pull", "hf:o/big"], env)
    assert r.returncode == 0, r.stderr
    assert "resume" not in r.stderr and "localhost" not in r.stderr  # huggingface_hub's retry log stays quiet
    assert Path(r.stdout.strip()).read_bytes() == big
    ranges = [req.range for req in server.requests_for(name) if req.method == "GET"]
    assert ranges == [None, f"bytes={MIB}-"]  # the whole chunks written before the cut are kept


def test_wrong_checksum_deletes_the_file(env: dict[str, str], server: HubServer) -> None:
    server.repos[REPO].corrupt.add("Tiny-Q8_0.gguf")
    r = _cli(["pull", f"hf:{REPO}:Q8_0"], env)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines()[-1].count("checksum mismatch") == 1 and "deleted" in r.stderr
    blobs = Path(env["HF_HUB_CACHE"]) / "models--tiny-org--Tiny-GGUF" / "blobs"
    assert list(blobs.iterdir()) == []
    assert _listed(env) == []


def test_truncated_file_is_kept_for_resume_and_not_listed(env: dict[str, str], server: HubServer,
                                                          ggufs: dict[str, bytes]) -> None:
    server.repos[REPO].short["Tiny-Q8_0.gguf"] = 1000  # less than a write buffer: it must be on disk all the same
    with pytest.raises(AigcError, match=r"stopped at 1\.0 KB of 483 KB .*partial file is kept"):
        _pull(f"hf:{REPO}:Q8_0")
    assert _listed(env) == []
    (partial,) = (Path(env["HF_HUB_CACHE"]) / "models--tiny-org--Tiny-GGUF" / "blobs").glob("*.incomplete")
    assert partial.stat().st_size == 1000
    del server.repos[REPO].short["Tiny-Q8_0.gguf"]  # the server is fixed: the same command goes on
    path = _pull(f"hf:{REPO}:Q8_0")
    assert path.read_bytes() == ggufs["Tiny-Q8_0.gguf"]
    assert server.requests_for("Tiny-Q8_0.gguf")[-1].range == "bytes=1000-"


def test_a_body_longer_than_listed_fills_no_disk(env: dict[str, str], server: HubServer, big: bytes) -> None:
    server.repos["o/big"] = Repo(files={"Big-Q4_K_M.gguf": big}, extra={"Big-Q4_K_M.gguf": 50 << 20})
    line = _error_line(_cli(["pull", "hf:o/big"], env))
    assert "sent more of Big-Q4_K_M.gguf than its listed size" in line and "deleted" in line
    blobs = Path(env["HF_HUB_CACHE"]) / "models--o--big" / "blobs"
    assert list(blobs.iterdir()) == [] and _listed(env) == []


def test_zero_byte_and_non_gguf_files(env: dict[str, str], server: HubServer) -> None:
    server.repos["o/bad"] = Repo(files={"Empty-Q4_K_M.gguf": b"", "Html-Q8_0.gguf": b"<html>nope</html>" * 100})
    with pytest.raises(AigcError, match="0 bytes on the hub"):
        hub.plan(hub_ref.parse_ref("hf:o/bad"))
    line = _error_line(_cli(["pull", "hf:o/bad:Q8_0"], env))
    assert "not a usable GGUF file" in line and "starts with b'<htm'" in line and "deleted" in line
    assert not list((Path(env["HF_HUB_CACHE"]) / "models--o--bad" / "blobs").iterdir())
    assert _listed(env) == []


def test_hostile_file_names_are_refused(env: dict[str, str], server: HubServer, tmp_path: Path,
                                        ggufs: dict[str, bytes]) -> None:
    good = ggufs["Tiny-Q4_K_M.gguf"]
    for i, name in enumerate(["../../evil-Q4_K_M.gguf", "/tmp/evil-Q4_K_M.gguf", "a/../../../evil-Q4_K_M.gguf",
                              "evil\x1b]52;c;aGk=\x07-Q4_K_M.gguf"]):
        server.repos[f"o/hostile{i}"] = Repo(files={name: good})
        r = _cli(["pull", f"hf:o/hostile{i}"], env)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "refuse to write" in r.stderr and "\x1b" not in r.stderr and "\x07" not in r.stderr
    everything = [p.name for p in tmp_path.rglob("*")] + os.listdir("/tmp")
    assert not any("evil" in n for n in everything)
    assert _listed(env) == []


def test_bad_etag_or_checksum_text_from_the_server(env: dict[str, str], server: HubServer) -> None:
    server.repos[REPO].listed_sha["Tiny-Q8_0.gguf"] = "../../../etc/passwd"
    with pytest.raises(AigcError, match="not a sha256"):
        hub.plan(hub_ref.parse_ref(f"hf:{REPO}:Q8_0"))


def test_offline_and_no_network(env: dict[str, str], server: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _cli(["pull", f"hf:{REPO}"], {**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "HF_HUB_OFFLINE is set" in r.stderr
    # once pulled, offline finds it in the cache
    _pull(f"hf:{REPO}")
    r = _cli(["pull", f"hf:{REPO}", "-q"], {**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0 and r.stdout.strip().endswith("Tiny-Q4_K_M.gguf")
    dead = HubServer()  # a port nobody listens on
    url = dead.url
    dead.httpd.server_close()
    r = _cli(["pull", f"hf:{REPO}:Q8_0"], {**env, "HF_ENDPOINT": url})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot reach the hub" in r.stderr, r.stderr


def test_disk_space_checked_before_starting(env: dict[str, str], server: HubServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "disk_free", lambda path: 1000)
    with pytest.raises(AigcError, match=r"not enough disk space in .*needs 483 KB more, 1\.0 KB free"):
        _pull(f"hf:{REPO}")
    assert server.requests_for("Tiny-Q4_K_M.gguf") == []


def test_full_disk_mid_download_keeps_the_partial(env: dict[str, str], server: HubServer,
                                                  ggufs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = hub._HashingWriter.write
    written = [0]

    def full(self, data: bytes) -> int:
        if written[0] + len(data) > 65_536:
            raise OSError(28, "No space left on device")
        written[0] += len(data)
        return real_write(self, data)

    monkeypatch.setattr(hub._HashingWriter, "write", full)
    with pytest.raises(AigcError, match=r"No space left on device after .*partial file is kept"):
        _pull(f"hf:{REPO}")
    assert _listed(env) == []
    monkeypatch.setattr(hub._HashingWriter, "write", real_write)
    assert _pull(f"hf:{REPO}").read_bytes() == ggufs["Tiny-Q4_K_M.gguf"]


def test_ctrl_c_keeps_the_partial_and_the_same_command_resumes(env: dict[str, str], server: HubServer,
                                                               big: bytes) -> None:
    name = "Big-Q4_K_M.gguf"
    server.repos["o/big"] = Repo(files={name: big}, pause_at={name: MIB + 1000})
    e = {**env, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "aigc_chat", "pull", "hf:o/big"], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    blobs = Path(env["HF_HUB_CACHE"]) / "models--o--big" / "blobs"

    def partial_size() -> int:
        return sum(p.stat().st_size for p in blobs.glob("*.incomplete")) if blobs.is_dir() else 0

    try:
        wait_for(server.paused.is_set, 30, "the server to pause")
        wait_for(lambda: partial_size() >= MIB, 30, "the first MiB on disk")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.release.set()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "kept" in err and "Traceback" not in err
    assert partial_size() == MIB
    assert _listed(env) == []
    server.repos["o/big"].pause_at.clear()
    r = _cli(["pull", "hf:o/big"], env)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == big
    assert server.requests_for(name)[-1].range == f"bytes={MIB}-"
    assert "1.0 MB already here" in r.stderr


def test_model_hf_ref_pulls_on_first_use_only_with_yes_on_a_pipe(env: dict[str, str], server: HubServer) -> None:
    r = _cli(["-m", f"hf:{REPO}:Q8_0", "-p", "hi", "-n", "2", "--no-history"], env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--yes" in r.stderr
    assert server.requests_for("Tiny-Q8_0.gguf") == []
    r = _cli(["-m", f"hf:{REPO}:Q8_0", "-p", "hi", "-n", "2", "--no-history", "--yes"], env)
    assert r.returncode == 0, r.stderr
    assert "ready" in r.stderr
    # the next run uses the cached file without asking or fetching
    n = len(server.log)
    r = _cli(["-m", f"hf:{REPO}:Q8_0", "-p", "hi", "-n", "2", "--no-history"], env)
    assert r.returncode == 0, r.stderr
    assert len(server.log) == n


def test_cancel_event_stops_and_keeps_the_partial(env: dict[str, str], server: HubServer, big: bytes) -> None:
    name = "Big-Q4_K_M.gguf"
    server.repos["o/big"] = Repo(files={name: big})
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int, file: str) -> None:
        seen.append(done)
        if done >= MIB:
            cancel.set()

    with pytest.raises(hub.PullCancelled):
        hub.pull(hub.plan(hub_ref.parse_ref("hf:o/big")), on_progress=progress, cancel=cancel)
    (partial,) = (Path(env["HF_HUB_CACHE"]) / "models--o--big" / "blobs").glob("*.incomplete")
    assert partial.stat().st_size == MIB  # the chunk that arrived is kept; the next one stopped the transfer
    assert seen[-1] == MIB and _listed(env) == []


def test_model_hf_ref_asks_on_a_terminal_and_draws_a_bar(env: dict[str, str], server: HubServer, big: bytes) -> None:
    from tests.pty_app import PtyApp

    server.repos["o/big"] = Repo(files={"Big-Q4_K_M.gguf": big})
    app = PtyApp([sys.executable, "-m", "aigc_chat", "-m", "hf:o/big", "-p", "hi", "-n", "1", "--no-history"],
                 {**env, "PYTHONPATH": str(SRC), "TERM": "xterm"})
    try:
        assert app.read(30, b"[y/N]"), bytes(app.buf)
        assert b"download Big-Q4_K_M.gguf (3.1 MB)" in app.buf
        assert server.requests_for("Big-Q4_K_M.gguf") == []  # nothing before the answer
        app.write(b"y\r")
        assert app.read(60, b"ready:"), bytes(app.buf)
    finally:
        app.close()
    out = bytes(app.buf).decode("utf-8", "replace")
    bar = out[out.index("[y/N]"):out.index("ready:")]
    assert "\r\x1b[2K" in bar and "[########################] 100.0% 3.1 MB / 3.1 MB" in bar and "/s" in bar
    assert "Big-Q4_K_M.gguf" in [p.name for p in (Path(env["HF_HUB_CACHE"]) / "models--o--big").rglob("*.gguf")]


def test_progress_lines_on_a_pipe_and_the_bar_on_a_terminal() -> None:
    import io

    from aigc_chat.pull_cli import ProgressPrinter

    now = [0.0]
    pipe = io.StringIO()
    pr = ProgressPrinter(pipe, tty=False, label="M Q4_K_M", clock=lambda: now[0])
    for done in range(0, 1001, 50):  # 50 KB a second
        pr(done * 1000, 1_000_000, "m.gguf")
        now[0] += 1
    lines = pipe.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("M Q4_K_M: 10% 100 KB / 1.0 MB, 50.0 KB/s, ETA 18s")
    assert lines[-1].startswith("M Q4_K_M: 100% 1.0 MB / 1.0 MB") and "ETA" not in lines[-1]
    tty = io.StringIO()
    now[0] = 0.0
    bar = ProgressPrinter(tty, tty=True, label="M", clock=lambda: now[0])
    bar(250_000, 1_000_000, "m.gguf")  # resumed: a quarter was here already, not part of the rate
    now[0] = 10.0
    bar(500_000, 1_000_000, "m.gguf")
    assert tty.getvalue().split("\r\x1b[2K")[-1] == (
        "M [############............]  50.0% 500 KB / 1.0 MB, 25.0 KB/s, ETA 20s")
