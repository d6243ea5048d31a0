"""Finding the user's models, short names, and sampling settings per model.

Every layout is built in a temp dir with real (tiny) GGUF files: a Hugging Face hub cache
with symlinked blobs in two revisions, an LM Studio tree, llama.cpp's cache with a split
model, an Ollama store (manifest + blob), and a models_dir with an embedding model and a
vision projector. HOME and every tool's variable point into the temp dir.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from aigc_chat import discovery, model_settings
from aigc_chat.config import load_config
from aigc_chat.errors import ModelError, UsageError
from aigc_chat.gguf_info import read_gguf_info
from tests.conftest import run_cli
from tests.tiny_gguf import CHATML, write_raw_gguf, write_tiny_gguf


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home = tmp_path / "home"
    hub = tmp_path / "hf" / "hub"
    llama_cache = tmp_path / "llama-cache"
    ollama = tmp_path / "ollama"
    mine = tmp_path / "my-models"
    for var, value in {"HOME": home, "HF_HUB_CACHE": hub, "HF_HOME": tmp_path / "hf",
                       "LLAMA_CACHE": llama_cache, "OLLAMA_MODELS": ollama}.items():
        monkeypatch.setenv(var, str(value))
    monkeypatch.delenv("LMSTUDIO_MODELS", raising=False)

    # Hugging Face: blobs, and snapshots of two revisions linking to the same blob.
    repo = hub / "models--TinyOrg--Tiny-Chat-GGUF"
    (repo / "blobs").mkdir(parents=True)
    blob = write_tiny_gguf(repo / "blobs" / ("a" * 64), "llama", seed=1, name="Tiny Chat",
                           extra={"tokenizer.chat_template": CHATML})
    for rev in ("rev1", "rev2"):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "tiny-chat-q8_0.gguf").symlink_to(os.path.relpath(blob, snap))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("rev2")

    # LM Studio: PUBLISHER/REPO/FILE, a chat model with its own sampling keys.
    lms = home / ".lmstudio" / "models" / "lmstudio-community" / "Tiny-Instruct-GGUF"
    lms.mkdir(parents=True)
    write_tiny_gguf(lms / "tiny-instruct-f32.gguf", "llama", seed=2, name="Tiny Instruct",
                    extra={"tokenizer.chat_template": CHATML, "general.sampling.temp": 0.3,
                           "general.sampling.top_k": 17})

    # llama.cpp's cache: a model split in two, and a base gemma3 model.
    llama_cache.mkdir(parents=True)
    write_tiny_gguf(llama_cache / "tiny-split-00001-of-00002.gguf", "llama", seed=3,
                    extra={"split.count": 2})
    write_raw_gguf(llama_cache / "tiny-split-00002-of-00002.gguf", "llama", split=(1, 2))
    write_tiny_gguf(llama_cache / "tiny-base-gemma.gguf", "gemma3", seed=4)

    # Ollama: a manifest naming the model layer, whose blob is a GGUF.
    digest = "b" * 64
    (ollama / "blobs").mkdir(parents=True)
    write_tiny_gguf(ollama / "blobs" / f"sha256-{digest}", "llama", seed=5, name="tinyllama",
                    extra={"tokenizer.chat_template": CHATML})
    (ollama / "blobs" / f"sha256-{'c' * 64}").write_text("{}")  # the config layer
    man = ollama / "manifests" / "registry.ollama.ai" / "library" / "tinyllama"
    man.mkdir(parents=True)
    (man / "latest").write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": 1},
        {"mediaType": "application/vnd.ollama.image.params", "digest": f"sha256:{'c' * 64}", "size": 2},
    ]}))
    (man / "broken").write_text("not json")

    # models_dir from the config: an embedding model, a vision projector, a second "tiny-chat".
    mine.mkdir()
    write_raw_gguf(mine / "tiny-embed.gguf", "bert", {"bert.pooling_type": 1})
    write_raw_gguf(mine / "mmproj-tiny-f16.gguf", "clip", {"general.type": "mmproj"})
    (mine / "other").mkdir()
    write_tiny_gguf(mine / "other" / "tiny-chat-q8_0.gguf", "llama", seed=6,
                    extra={"tokenizer.chat_template": CHATML})
    return {"home": home, "hub": hub, "llama": llama_cache, "ollama": ollama, "mine": mine,
            "blob": blob}


def _config(isolated_dirs, layout, extra: str = ""):
    path = isolated_dirs["config"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'models_dir = ["{layout["mine"]}"]\n{extra}')
    return load_config()


def _by_name(entries):
    return {e.name: e for e in entries}


def test_every_place_is_found_with_its_facts(isolated_dirs, layout):
    entries = discovery.scan(_config(isolated_dirs, layout))
    names = [e.name for e in entries if e.source != "bundled"]
    # one entry per model: the HF blob in two revisions once, the split model once
    assert sorted(names) == sorted(["tiny-embed", "mmproj-tiny-f16", "tiny-chat-q8_0", "tiny-chat-q8_0",
                                    "tiny-instruct-f32", "tiny-split", "tiny-base-gemma",
                                    "tinyllama:latest"])
    e = {(x.name, x.source): x for x in entries}
    hf = e[("tiny-chat-q8_0", "huggingface")]
    assert hf.label == "TinyOrg/Tiny-Chat-GGUF" and hf.chat_template and hf.kind == "chat"
    assert hf.architecture == "llama" and hf.context_length == 256 and hf.quantization == "F32"
    assert hf.parameters and hf.size == layout["blob"].stat().st_size
    lms = e[("tiny-instruct-f32", "lmstudio")]
    assert lms.label == "lmstudio-community/Tiny-Instruct-GGUF"
    split = e[("tiny-split", "llama.cpp")]
    assert split.parts == 2 and split.path.endswith("-00001-of-00002.gguf")
    assert split.size == sum(p.stat().st_size for p in layout["llama"].glob("tiny-split-*"))
    assert split.parameters > read_gguf_info(split.path).tensor_count  # both parts counted
    assert e[("tiny-base-gemma", "llama.cpp")].kind == "text" and not e[("tiny-base-gemma", "llama.cpp")].chat_template
    oll = e[("tinyllama:latest", "ollama")]
    assert oll.path == str(layout["ollama"] / "blobs" / f"sha256-{'b' * 64}") and oll.kind == "chat"
    assert e[("tiny-embed", "models_dir")].kind == "embedding"
    assert e[("mmproj-tiny-f16", "models_dir")].kind == "vision-projector"


def test_the_listing_is_the_same_without_the_bulk_string_walk(isolated_dirs, layout, monkeypatch):
    """The tiny vocabularies (~350 tokens) go through gguf_info's numpy walk; the exact loop
    alone must list every file with the same facts (tests/test_gguf_walk.py: the walk itself)."""
    from aigc_chat import gguf_info

    cfg = _config(isolated_dirs, layout)
    bulk = [e.to_dict() for e in discovery.scan(cfg, use_index=False)]
    monkeypatch.setattr(gguf_info, "_BULK_MIN_STRINGS", 1 << 62)
    assert [e.to_dict() for e in discovery.scan(cfg, use_index=False)] == bulk
    assert len([e for e in bulk if e["parameters"]]) >= 6


def test_the_index_is_reused_and_notices_a_changed_file(isolated_dirs, layout, monkeypatch):
    cfg = _config(isolated_dirs, layout)
    discovery.scan(cfg)
    calls = []
    real = discovery._facts
    monkeypatch.setattr(discovery, "_facts", lambda p, parts: calls.append(p) or real(p, parts))
    discovery.scan(cfg)
    assert calls == []  # nothing changed: no header read again
    target = layout["llama"] / "tiny-base-gemma.gguf"
    write_tiny_gguf(target, "gemma3", seed=9, context_length=512)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    entry = _by_name(discovery.scan(cfg))["tiny-base-gemma"]
    assert calls == [target] and entry.context_length == 512


def test_a_split_model_with_a_missing_part_is_marked(isolated_dirs, layout):
    (layout["llama"] / "tiny-split-00002-of-00002.gguf").unlink()
    entry = _by_name(discovery.scan(_config(isolated_dirs, layout)))["tiny-split"]
    assert entry.kind == "unreadable" and "1 of 2 parts" in entry.error


def test_short_names_resolve(isolated_dirs, layout):
    cfg = _config(isolated_dirs, layout)
    assert discovery.resolve("tinyllama", cfg) == layout["ollama"] / "blobs" / f"sha256-{'b' * 64}"
    assert discovery.resolve("tinyllama:latest", cfg) == layout["ollama"] / "blobs" / f"sha256-{'b' * 64}"
    assert discovery.resolve("tiny-instruct", cfg).name == "tiny-instruct-f32.gguf"  # a unique prefix
    assert discovery.resolve("TINY-SPLIT", cfg).name == "tiny-split-00001-of-00002.gguf"
    assert discovery.resolve("tiny-embed", cfg).name == "tiny-embed.gguf"  # exact: allowed
    with pytest.raises(ModelError):
        discovery.resolve("embed", cfg)  # not a chat model: never matched loosely
    path = str(layout["llama"] / "tiny-base-gemma.gguf")
    assert discovery.resolve(path, cfg) == Path(path)  # a path stays a path


def test_ambiguous_and_unknown_names(isolated_dirs, layout):
    cfg = _config(isolated_dirs, layout)
    with pytest.raises(UsageError) as err:
        discovery.resolve("tiny-chat-q8_0", cfg)  # two different files with that name
    msg = str(err.value)
    assert "matches 2 models" in msg and "huggingface" in msg and "models_dir" in msg
    with pytest.raises(ModelError) as err:
        discovery.resolve("no-such-model", cfg)
    msg = str(err.value)
    for where in (str(layout["hub"]), str(layout["ollama"]), str(layout["llama"]), str(layout["mine"]),
                  str(layout["home"] / ".lmstudio" / "models")):
        assert where in msg


def test_models_command_table_json_and_model_flag(cli, isolated_dirs, layout):
    _config(isolated_dirs, layout)
    r = run_cli(cli, "models")
    assert r.returncode == 0, r.stderr
    assert "tinyllama:latest" in r.stdout and "vision-projector" in r.stdout and "2 parts" in r.stdout
    assert "smollm2-135m" in r.stdout  # the bundled ones are listed too
    rows = [json.loads(line) for line in run_cli(cli, "models", "--json").stdout.splitlines()]
    by = {(x["name"], x["source"]): x for x in rows}
    assert by[("tinyllama:latest", "ollama")]["chat_template"] is True
    assert by[("tiny-embed", "models_dir")]["kind"] == "embedding"
    r = run_cli(cli, "--model", "tiny-chat-q8_0", "-p", "hi", "-n", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "matches 2 models" in r.stderr
    r = run_cli(cli, "--model", "nothing-like-it", "-p", "hi", "-n", "2")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "looked in" in r.stderr
    r = run_cli(cli, "--model", "tinyllama", "-p", "hi", "-n", "3", "--temperature", "0", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["finish_reason"] in ("stop", "length")


def test_listing_200_files_is_quick(isolated_dirs, tmp_path, monkeypatch):
    root = tmp_path / "many"
    root.mkdir()
    first = write_tiny_gguf(root / "m000.gguf", "llama", seed=0)
    data = first.read_bytes()
    for i in range(1, 200):
        (root / f"m{i:03d}.gguf").write_bytes(data)
    for var in ("HF_HUB_CACHE", "LLAMA_CACHE", "OLLAMA_MODELS"):
        monkeypatch.setenv(var, str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    cfg = _config(isolated_dirs, {"mine": root})
    t0 = time.perf_counter()
    cold = discovery.scan(cfg)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = discovery.scan(cfg)
    warm_s = time.perf_counter() - t0
    listed = [len([e for e in scan if e.source == "models_dir"]) for scan in (cold, warm)]
    assert listed == [200, 200]
    assert warm_s < 1.0, (cold_s, warm_s)  # the target; bench/bench_models.py prints the figures


# -- settings per model -------------------------------------------------------------------------


def test_precedence_flags_models_generation_file_table(isolated_dirs, layout):
    lms = (layout["home"] / ".lmstudio" / "models" / "lmstudio-community" / "Tiny-Instruct-GGUF"
           / "tiny-instruct-f32.gguf")
    info = read_gguf_info(lms)
    cfg = _config(isolated_dirs, layout, "[generation]\ntop_p = 0.5\nmin_p = 0.01\n"
                  '[models."tiny-instruct*"]\nmin_p = 0.2\n[models."tiny-instruct-f32"]\nmin_p = 0.3\n')
    params, src = model_settings.resolve(cfg, "tiny-instruct", info)
    assert (params.temperature, src["temperature"]) == (0.3, "model file (general.sampling)")
    assert (params.top_k, src["top_k"]) == (17, "model file (general.sampling)")
    assert (params.top_p, src["top_p"]) == (0.5, "config [generation]")
    assert (params.min_p, src["min_p"]) == (0.3, 'config [models."tiny-instruct-f32"]')  # exact beats glob
    assert "max_tokens" not in src  # the default
    flagged = cfg.with_overrides(temperature=0.9, min_p=0.0)
    params, src = model_settings.resolve(flagged, "tiny-instruct", info)
    assert (params.temperature, src["temperature"], params.min_p) == (0.9, "flag", 0.0)


def test_the_builtin_table_names_the_default(isolated_dirs, default_path):
    cfg = load_config()
    params, src = model_settings.resolve(cfg, "smollm2-135m", read_gguf_info(default_path))
    assert (params.temperature, params.repeat_penalty) == (0.2, 1.1)
    assert src["temperature"].startswith("built-in table")
    # a user's [generation] beats what we ship
    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text("[generation]\ntemperature = 0.7\n")
    params, src = model_settings.resolve(load_config(), None, read_gguf_info(default_path))
    assert params.temperature == 0.7 and params.repeat_penalty == 1.1


def test_bad_models_table_names_the_key(isolated_dirs):
    from aigc_chat.errors import ConfigError

    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text('[models."smollm2*"]\ntemperature = 9\n')
    with pytest.raises(ConfigError, match=r'models\.smollm2\*\.temperature'):
        load_config()
    isolated_dirs["config"].write_text('[models."smollm2*"]\ntemprature = 0.1\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config()


def test_config_show_says_where_each_value_came_from(cli, isolated_dirs, default_path):
    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text('[generation]\ntop_k = 7\n[models."smollm2*"]\nmin_p = 0.1\n')
    r = run_cli(cli, "config", "show")
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[1]: ln for ln in r.stdout.splitlines() if ln.startswith("#   ")}
    assert lines["temperature"].split()[2:] == ["0.2", "built-in", "table", "(smollm2*)"]
    assert lines["top_k"].endswith("config [generation]")
    assert lines["min_p"].endswith('config [models."smollm2*"]')
    assert lines["max_tokens"].endswith("default")
    assert '[models."smollm2*"]' in r.stdout  # kept when the TUI saves the settings


def test_smollm2_template_renders_chatml_with_its_default_system_prompt(default_path):
    from aigc_chat.chat_types import Message
    from aigc_chat.templates import choose_template, segments_text

    info = read_gguf_info(default_path)
    tpl = choose_template("", info.chat_template, info.architecture)
    assert tpl.name == "gguf"
    text = segments_text(tpl.render([Message("user", "Hi")]))
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    text = segments_text(tpl.render([Message("system", "Be brief."), Message("user", "Hi")]))
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n") and "SmolLM" not in text
