"""bench/gpu_check.sh, the one-run GPU check of issue 15, as far as it can be checked here:
the scripts parse, the build flags ask for compute capability 9.0 only, the step runner goes
on past failed, timed-out and skipped steps and reports each, the CUDA toolkit probe finds
cuBLAS where pip put it, the wheel-set check catches what is missing, the generated model
keeps the real file's tensors and tokenizer, and the figures are judged against the issue's
targets. No network, no GPU, no prepared .gpu/ folder; a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SCRIPTS = ["gpu_check.sh", "gpu_steps.sh", "gpu_prepare.sh"]


def _tools():
    spec = importlib.util.spec_from_file_location("gpu_tools", BENCH / "gpu_tools.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tools = _tools()


def bash(script: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, **kw)


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse(name: str) -> None:
    r = subprocess.run(["bash", "-n", str(BENCH / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_scripts_are_shellcheck_clean() -> None:
    r = subprocess.run(["shellcheck", "-x", "-S", "warning", *SCRIPTS], cwd=BENCH, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_build_flags_ask_for_cuda_on_compute_capability_9_0_only() -> None:
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--print-cmake-args"], capture_output=True, text=True)
    flags = r.stdout.split()
    assert r.returncode == 0
    assert "-DGGML_CUDA=on" in flags
    assert [f for f in flags if "CUDA_ARCHITECTURES" in f] == ["-DCMAKE_CUDA_ARCHITECTURES=90"]


def test_usage_and_unknown_option() -> None:
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_runner_goes_on_past_failures_and_reports_every_step(tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    driver = f"""
        set -u
        GC_RESERVE=0 GC_MIN_STEP=1
        source {BENCH / 'gpu_steps.sh'}
        gc_init {work} {out} 60
        say() {{ echo "said $1"; }}
        fail() {{ echo "about to fail" >&2; return 3; }}
        export -f say fail
        gc_step first 10 -- say one
        gc_step_bg slow 10 -- bash -c 'sleep 1; echo slept'
        gc_step broken 10 -- fail
        gc_step hangs 1 -- sleep 30
        gc_step after-broken 10 --needs broken -- say never
        gc_step after-slow 10 --needs slow,first -- say waited
        gc_step last 10 -- say end
        gc_summary
    """
    t = time.monotonic()
    r = bash(driver)
    assert time.monotonic() - t < 20  # the hung step was killed at its 1 s limit
    assert r.returncode == 1, r.stdout + r.stderr  # some steps not ok
    table = (out / "summary.txt").read_text()
    rows = {line.split()[0]: line.split()[1:3] for line in table.splitlines()[1:] if line and not line[0].isdigit()}
    assert rows == {"first": ["ok", "0"], "slow": ["ok", "0"], "broken": ["FAILED", "3"], "hangs": ["TIMEOUT", "124"],
                    "after-broken": ["SKIPPED", "-"], "after-slow": ["ok", "0"], "last": ["ok", "0"]}
    assert "needs broken" in table and "killed at its 1s limit" in table
    log = (out / "steps.log").read_text()
    for text in ("said one", "about to fail", "slept", "said waited", "said end", "skipped: needs broken"):
        assert text in log
    assert "said never" not in log
    assert sorted(os.listdir(out)) == ["steps.log", "summary.txt"]  # nothing else lands in OUT
    assert r.stdout.strip().splitlines()[-1].startswith("7 steps finished, 3 not ok")


def test_runner_skips_steps_when_the_budget_is_spent(tmp_path: Path) -> None:
    r = bash(f"""
        GC_RESERVE=5 GC_MIN_STEP=3
        source {BENCH / 'gpu_steps.sh'}
        gc_init {tmp_path}/w {tmp_path}/o 6
        gc_step a 10 -- true
        gc_summary
    """)
    assert r.returncode == 1
    assert "SKIPPED" in r.stdout and "no time left" in r.stdout


def _fake_exe(path: Path, body: str = "#!/bin/sh\necho fake\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_cuda_probe_finds_cublas_in_the_pip_packages(tmp_path: Path) -> None:
    """A toolkit without cuBLAS (as pip-assembled toolkits are): the probe points CMake at
    the nvidia-cublas package's headers and libraries."""
    nvcc = _fake_exe(tmp_path / "cuda" / "bin" / "nvcc")
    (tmp_path / "cuda" / "include").mkdir()
    pkg = tmp_path / "site" / "nvidia" / "cu13"
    (pkg / "include").mkdir(parents=True)
    (pkg / "include" / "cublas_v2.h").write_text("")
    (pkg / "lib").mkdir()
    for lib in ("libcublas.so.13", "libcublasLt.so.13"):
        (pkg / "lib" / lib).write_text("")
    r = bash(f"""
        source {BENCH / 'gpu_steps.sh'}
        cuda_probe {nvcc} {tmp_path / 'nowhere'} {tmp_path / 'site'}
        echo "rc=$?"
        echo "CXX=$GC_CUDACXX"; echo "EXTRA=$GC_CUDA_EXTRA"; echo "LD=$GC_LDPATH"
    """)
    out = r.stdout
    assert f"CXX={nvcc}" in out
    assert f"-DCUDA_cublas_LIBRARY={pkg}/lib/libcublas.so.13" in out
    assert f"-DCUDA_cublasLt_LIBRARY={pkg}/lib/libcublasLt.so.13" in out
    assert f"-DCMAKE_CUDA_FLAGS=-I{pkg}/include" in out
    assert f"LD={pkg}/lib" in out


def test_cuda_probe_adds_nothing_for_a_full_toolkit(tmp_path: Path) -> None:
    root = tmp_path / "cuda-13.0"
    real = _fake_exe(root / "bin" / "nvcc")
    wrapper = _fake_exe(tmp_path / "bin" / "nvcc", f'#!/bin/sh\nexec {real} "$@"\n')  # as /usr/local/bin/nvcc is
    (root / "include").mkdir()
    (root / "include" / "cublas_v2.h").write_text("")
    (root / "lib64" / "stubs").mkdir(parents=True)
    for lib in ("libcublas.so", "libcublasLt.so", "stubs/libcuda.so"):
        (root / "lib64" / lib).write_text("")
    r = bash(f"""
        source {BENCH / 'gpu_steps.sh'}
        cuda_probe {wrapper}
        echo "rc=$? CXX=$GC_CUDACXX EXTRA=[$GC_CUDA_EXTRA]"
    """)
    assert f"rc=0 CXX={real} EXTRA=[]" in r.stdout, r.stdout


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)
    return path


def test_wheel_set_check(tmp_path: Path) -> None:
    _wheel(tmp_path, "aigc-chat", "0.1.0", ["textual>=1.0", "gguf>=0.10", "numpy>=1.26",
                                            'torch>=2.2; extra == "torch"', 'openai>=1.40; extra == "openai"',
                                            'llama-cpp-python>=0.3.8; extra == "llama"'])
    _wheel(tmp_path, "textual", "8.2.8", ["rich>=14.2.0", "platformdirs<5,>=3.6.0"])
    _wheel(tmp_path, "gguf", "0.9.0", ["numpy>=1.17"])
    wheels, problems = tools.load_wheels(tmp_path)
    assert problems == []
    _notes, problems = tools.check_closure(wheels, [("aigc-chat", {"torch"})], ["diskcache>=5.6.1"])
    text = "\n".join(problems)
    assert "gguf>=0.10 (from aigc-chat): carried wheel is 0.9.0" in text
    assert "platformdirs" in text and "neither carried nor on the device" in text  # not on the GPU image
    assert "diskcache>=5.6.1" in text
    assert "openai" not in text  # an extra we do not install
    assert not any("torch" in p or "numpy" in p or p.startswith("rich") for p in problems)  # the image has them
    _wheel(tmp_path, "gguf", "0.19.0", ["numpy>=1.17"])
    assert any("two wheels of gguf" in p for p in tools.load_wheels(tmp_path)[1])


def test_only_wheels_for_cpython_3_12_on_x86_64_linux() -> None:
    ok = ["textual-8.2.8-py3-none-any.whl", "numpy-2.2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
          "x-1.0-cp39-abi3-manylinux_2_28_x86_64.whl"]
    bad = ["numpy-2.2.0-cp311-cp311-manylinux_2_17_x86_64.whl", "x-1.0-py3-none-macosx_11_0_arm64.whl",
           "x-1.0-cp312-cp312-manylinux_2_17_aarch64.whl"]
    assert all(tools.installable_on_device(n) for n in ok)
    assert not any(tools.installable_on_device(n) for n in bad)


def test_generated_model_keeps_the_real_files_tensors_and_tokenizer(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    from tests.tiny_gguf import write_tiny_gguf

    real = write_tiny_gguf(tmp_path / "real.gguf", "gemma3", seed=1)
    spec, made = tmp_path / "spec.gguf", tmp_path / "made.gguf"
    assert tools.main(["spec", str(real), str(spec)]) == 0
    assert tools.main(["make-model", str(spec), str(made), "--seed", "3"]) == 0
    a, b = gguf.GGUFReader(str(real)), gguf.GGUFReader(str(made))
    ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    assert set(ta) == set(tb)
    for name, t in ta.items():
        assert list(tb[name].shape) == list(t.shape), name
        if len(t.shape) > 1:
            assert tb[name].tensor_type == gguf.GGMLQuantizationType.F16
            assert not np.allclose(np.array(tb[name].data, dtype=np.float32), np.array(t.data))  # new weights
        else:
            np.testing.assert_array_equal(np.array(tb[name].data), np.ones(t.shape))  # unit norms
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                "gemma3.block_count", "gemma3.attention.sliding_window", "tokenizer.ggml.bos_token_id"):
        assert b.fields[key].contents() == a.fields[key].contents(), key
    # control tokens' rows are small, so a random argmax does not end the turn
    emb = np.array(tb["token_embd.weight"].data, dtype=np.float32)
    types = np.array(a.fields["tokenizer.ggml.token_type"].contents())
    control = types == int(gguf.TokenType.CONTROL)
    assert np.abs(emb[control]).mean() < 0.2 * np.abs(emb[~control]).mean()
    # a cut model: fewer layers and tokens
    cut = tmp_path / "cut.gguf"
    assert tools.main(["make-model", str(spec), str(cut), "--layers", "2", "--vocab", "100"]) == 0
    c = gguf.GGUFReader(str(cut))
    assert c.fields["gemma3.block_count"].contents() == 2
    assert len(c.fields["tokenizer.ggml.tokens"].contents()) == 100
    assert not any(t.name.startswith("blk.2.") for t in c.tensors)


def test_generated_model_quantises_and_loads_in_llama_cpp(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    pytest.importorskip("llama_cpp")
    from aigc_chat.backends.torch_gpt import parity
    from tests.tiny_gguf import write_tiny_gguf

    spec, f16, q8 = tmp_path / "spec.gguf", tmp_path / "f16.gguf", tmp_path / "q8.gguf"
    assert tools.main(["spec", str(write_tiny_gguf(tmp_path / "real.gguf", "llama", seed=1)), str(spec)]) == 0
    assert tools.main(["make-model", str(spec), str(f16)]) == 0
    assert tools.main(["quantize", str(f16), str(q8), "--ftype", "Q8_0", "--threads", "1"]) == 0
    llm = parity.llama_reference(q8, n_ctx=64)
    try:
        assert len(parity.llama_greedy(llm, [1, 40, 41, 42], 4)) == 4
    finally:
        llm.close()


def _work(tmp_path: Path, share: float) -> Path:
    w = tmp_path / "w"
    (w / "logs").mkdir(parents=True)
    (w / "bandwidth.json").write_text(json.dumps({"device": "NVIDIA H200", "median_gbs": 4300.0}))
    (w / "logs" / "decode.log").write_text(
        "shape        mode               tok/s  ms/tok  MB/tok   GB/s  share\n"
        "gemma3-270m  graphs            900.0    1.11     536    482  11.2%   (median 880.0 tok/s)\n"
        f"llama-8b     graphs            {share * 4300 / 16.06:.1f}    9.99   16060   {share * 4300:.0f}  "
        f"{share:.1%}   (median 1 tok/s)\n")
    (w / "logs" / "doctor.log").write_text("aigc-chat              0.1.0\nllama.cpp GPU offload  yes\n")
    (w / "logs" / "oneshot.log").write_text(
        '{"text": "x", "finish_reason": "length"}\n'
        "[llama] /w/default.gguf on GPU (31 layers offloaded), context 8192, loaded in 1.00 s\n"
        "[torch] /w/default.gguf on cuda (NVIDIA H200), bfloat16, context 4096, loaded in 3.00 s\n")
    (w / "models.json").write_text(json.dumps({
        "parity": {"n_layer": 18, "source": "gemma-3-270m-q4_k_m.gguf"},
        "default": {"n_layer": 30, "source": "SmolLM2-135M-Instruct.Q4_1.gguf"}}))
    agree = {"offload": {"offloaded": 31, "total": 31}, "graphs_vs_eager": {"identical": 5, "of": 5},
             "torch_vs_llama_gpu": {"identical": 4, "of": 5, "top1": 0.99, "mean_kl": 0.001, "dtype": "auto"},
             "llama_cpu_vs_gpu": {"identical": 3, "of": 5, "top1": 0.98, "mean_kl": 0.002}}
    (w / "agree-default.json").write_text(json.dumps(agree))
    (w / "agree-parity.json").write_text(json.dumps({**agree, "offload": {"offloaded": 19, "total": 19}}))
    return w


def test_figures_are_judged_against_the_issue_targets(tmp_path: Path) -> None:
    fig = tools.collect_figures(_work(tmp_path, 0.65))
    verdicts = {t: v for t, v, _ in tools.evaluate_targets(fig)}
    assert len(verdicts) == 7 and set(verdicts.values()) == {"PASS"}, verdicts
    out = tmp_path / "figures.json"
    assert tools.main(["figures", str(tmp_path / "w"), str(out)]) == 0
    assert json.loads(out.read_text())["decode"][1]["shape"] == "llama-8b"


def test_figures_fail_what_misses_a_target(tmp_path: Path) -> None:
    w = _work(tmp_path, 0.5)
    (w / "logs" / "oneshot.log").write_text("[llama] /w/default.gguf on GPU (12 layers offloaded), context 8192, x\n")
    fig = tools.collect_figures(w)
    fig["parity"]["parity"]["torch_vs_llama_gpu"]["top1"] = 0.9
    failed = {t for t, v, _ in tools.evaluate_targets(fig) if v == "FAIL"}
    assert any(t.startswith("8B shape") for t in failed)
    assert any(t.startswith("n_gpu_layers auto") for t in failed)
    assert any(t.startswith("torch (auto) vs llama.cpp CUDA") and "parity model" in t for t in failed)
    assert len(failed) == 3
    assert {v for _, v, _ in tools.evaluate_targets(fig, gpu=False)} <= {"info", "n/a"}


def test_travel_size_counts_the_tree_and_the_carried_folder(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("/.gpu/\n/ignored/\n")
    (repo / "a.txt").write_bytes(b"x" * 1000)
    (repo / "ignored").mkdir()
    (repo / "ignored" / "big").write_bytes(b"x" * 5000)
    (repo / ".gpu").mkdir()
    (repo / ".gpu" / "w.whl").write_bytes(b"x" * 3000)
    total, parts = tools.travel_size(repo, [".gpu"])
    assert parts == {"working tree": 1000 + len("/.gpu/\n/ignored/\n"), ".gpu": 3000}
    assert total == sum(parts.values())
    assert tools.main(["travel-size", str(repo), "--carry", ".gpu"]) == 0
