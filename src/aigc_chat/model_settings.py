"""Sampling settings per model, and where each value in effect came from.

Small models need their own sampling (SmolLM2 wanders at temperature 0.8 and loops without a
repeat penalty), so generation values are layered, highest first:

1. command-line flags (`--temperature` ...)
2. the conversation (values saved with a conversation that is continued, the settings pane)
3. the role the run is under (`--role`, the TUI's role picker: aigc_chat.roles), "role NAME"
4. `[models."GLOB"]` in config.toml, for the models whose name matches GLOB
5. `[generation]` in config.toml (every model)
6. the model's own defaults: its GGUF `general.sampling.*` keys, else our built-in table
7. llama.cpp's defaults (`GenerationParams`)

What the user wrote always beats what we or the model's authors ship, and the more specific
of the user's settings (per model) beats the general one; a role, chosen for this run, beats
both. Layers 1, 3-7 are resolved here; layer 2 belongs to the front ends (they overlay a
continued conversation's settings).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aigc_chat import roles
from aigc_chat.params import PARAM_NAMES, GenerationParams, coerce_param


@dataclass(frozen=True)
class KnownModel:
    globs: tuple[str, ...]  # matched, case-insensitively, against the model's names
    values: dict[str, Any]
    why: str


# Models we ship or know. Values are their authors' published recommendations.
BUILTIN_TABLE: tuple[KnownModel, ...] = (
    KnownModel(("smollm2*", "*smollm2*"), {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1},
               "SmolLM2's authors use temperature 0.2 and top-p 0.9; repeat penalty 1.1 stops its loops"),
    KnownModel(("*gemma-3*-it*", "*gemma3*-it*", "gemma3:*"),
               {"temperature": 1.0, "top_k": 64, "top_p": 0.95, "min_p": 0.0},
               "Google's recommended sampling for Gemma 3 instruction-tuned models"),
    KnownModel(("*qwen2.5*instruct*", "qwen2.5:*"),
               {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.05},
               "Qwen2.5's generation_config.json"),
    KnownModel(("*qwen3*", "qwen3:*"), {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
               "Qwen3's recommended thinking-mode sampling"),
    KnownModel(("*llama-3*instruct*", "*llama3*instruct*", "llama3*:*"), {"temperature": 0.6, "top_p": 0.9},
               "Meta's generation_config.json for Llama 3 instruct"),
)

# GGUF general.sampling.* keys (llama.cpp's names) -> our parameter names.
GGUF_SAMPLING_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_k": "top_k",
    "general.sampling.top_p": "top_p",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty",
}


def model_names(model: str | Path | None, info: Any = None) -> list[str]:
    """The names a model answers to, for matching globs: what the user typed, the file name
    (with and without .gguf), and the GGUF's general.name. Lower case."""
    names: list[str] = []
    if model:
        text = str(model)
        names.append(text)
        base = Path(text).name
        names += [base, base.removesuffix(".gguf")]
    if info is not None:
        path = getattr(info, "path", None)
        if path is not None:
            names += [Path(path).name, Path(path).name.removesuffix(".gguf")]
        general = getattr(info, "metadata", {}).get("general.name")
        if isinstance(general, str) and general:
            names.append(general)
    out: list[str] = []
    for n in names:
        n = n.strip().lower()
        if n and n not in out:
            out.append(n)
    return out


def _matches(glob: str, names: list[str]) -> bool:
    g = glob.lower()
    return any(fnmatch.fnmatchcase(n, g) for n in names)


def builtin_values(names: list[str]) -> tuple[dict[str, Any], str]:
    for known in BUILTIN_TABLE:
        if any(_matches(g, names) for g in known.globs):
            return dict(known.values), known.globs[0]
    return {}, ""


def gguf_values(info: Any) -> dict[str, Any]:
    """The file's own general.sampling.* recommendations (valid ones only)."""
    if info is None:
        return {}
    out: dict[str, Any] = {}
    meta = getattr(info, "metadata", {})
    for key, name in GGUF_SAMPLING_KEYS.items():
        if key in meta:
            value = meta[key]
            if isinstance(value, float):
                value = float(f"{value:.6g}")  # stored as float32: 0.3 reads 0.30000001
            try:
                out[name] = coerce_param(name, value)
            except Exception:  # noqa: BLE001 - a file's odd default is skipped, it must not stop the load
                continue
    return out


def user_values(models: dict[str, dict[str, Any]], names: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Matching `[models."GLOB"]` tables, least specific first (an exact name last, so it wins)."""
    hits = [(glob, values) for glob, values in models.items() if _matches(glob, names)]

    def specificity(item: tuple[str, dict[str, Any]]) -> tuple[int, int]:
        glob = item[0]
        wild = sum(glob.count(c) for c in "*?[")
        return (0 if wild else 1, len(glob) - wild)

    return sorted(hits, key=specificity)


def resolve(config: Any, model: str | Path | None, info: Any = None) -> tuple[GenerationParams, dict[str, str]]:
    """The generation values for this model under this config, and the source of each."""
    names = model_names(model, info)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(layer: dict[str, Any], source: str) -> None:
        for k, v in layer.items():
            if k in PARAM_NAMES:
                values[k] = v
                sources[k] = source

    table, glob = builtin_values(names)
    put(table, f"built-in table ({glob})")
    put(gguf_values(info), "model file (general.sampling)")
    put(getattr(config, "file_generation", {}), "config [generation]")
    for glob, layer in user_values(getattr(config, "models", {}), names):
        put(layer, f'config [models."{glob}"]')
    put(*roles.generation_layer(config))  # "role NAME"
    put(getattr(config, "flag_generation", {}), "flag")
    params = replace(GenerationParams(), **values).validate()
    return params, sources


def apply(config: Any, model: str | Path | None, info: Any = None) -> Any:
    """A copy of config whose generation values are those in effect for this model."""
    params, sources = resolve(config, model, info)
    return replace(config, generation=params, sources=sources)


def describe(config: Any) -> list[tuple[str, Any, str]]:
    """(name, value, source) for every generation parameter, for `config show` and the pane."""
    return [(name, getattr(config.generation, name), config.source(name)) for name in PARAM_NAMES]
