"""Chat templates: turn role/content messages into the prompt a model was trained on.

Built-in formats render to *segments*: template markup (parsed as special tokens) kept apart
from user and model text (never parsed as special tokens), so a message that contains
`<end_of_turn>` cannot forge a turn. Every backend tokenises the same segments, so switching
backend changes the engine, not the question. A GGUF's own Jinja template is used when it
has one; it renders to a single markup segment, as llama.cpp does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aigc_chat.errors import UsageError


@dataclass(frozen=True)
class Segment:
    text: str
    special: bool  # True: template markup, special tokens are parsed in it


def _m(text: str) -> Segment:
    return Segment(text, True)


def _t(text: str) -> Segment:
    return Segment(text, False)


def _split_system(messages: Sequence[Any]) -> tuple[str, list[Any]]:
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    return system, [m for m in messages if m.role != "system"]


def _gemma(messages: Sequence[Any]) -> list[Segment]:
    # Gemma has no system role: the system prompt opens the first user turn.
    system, rest = _split_system(messages)
    out: list[Segment] = []
    for i, m in enumerate(rest):
        role = "model" if m.role == "assistant" else "user"
        content = m.content
        if i == 0 and system and role == "user":
            content = f"{system}\n\n{content}"
        out += [_m("<start_of_turn>"), _t(f"{role}\n{content}"), _m("<end_of_turn>"), _t("\n")]
    if system and not any(m.role == "user" for m in rest):
        out += [_m("<start_of_turn>"), _t(f"user\n{system}"), _m("<end_of_turn>"), _t("\n")]
    out += [_m("<start_of_turn>"), _t("model\n")]
    return out


def _chatml(messages: Sequence[Any]) -> list[Segment]:
    out: list[Segment] = []
    for m in messages:
        out += [_m("<|im_start|>"), _t(f"{m.role}\n{m.content}"), _m("<|im_end|>"), _t("\n")]
    out += [_m("<|im_start|>"), _t("assistant\n")]
    return out


def _llama3(messages: Sequence[Any]) -> list[Segment]:
    out: list[Segment] = []
    for m in messages:
        out += [_m("<|start_header_id|>"), _t(m.role), _m("<|end_header_id|>"),
                _t(f"\n\n{m.content}"), _m("<|eot_id|>")]
    out += [_m("<|start_header_id|>"), _t("assistant"), _m("<|end_header_id|>"), _t("\n\n")]
    return out


def _llama2(messages: Sequence[Any]) -> list[Segment]:
    system, rest = _split_system(messages)
    out: list[Segment] = []
    first = True
    for m in rest:
        if m.role == "user":
            if not first:
                out.append(_m("<s>"))
            body = m.content
            if first and system:
                body = f"<<SYS>>\n{system}\n<</SYS>>\n\n{body}"
            out.append(_t(f"[INST] {body} [/INST]"))
            first = False
        else:
            out += [_t(f" {m.content} "), _m("</s>")]
    return out


def _plain(messages: Sequence[Any]) -> list[Segment]:
    """For base models without any chat format."""
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    text = "".join(f"{names[m.role]}: {m.content}\n\n" for m in messages)
    return [_t(text + "Assistant:")]


BUILTIN = {"gemma": _gemma, "chatml": _chatml, "llama-3": _llama3, "llama-2": _llama2,
           "plain": _plain}
# Stop strings the built-in formats need besides the model's end-of-generation tokens.
BUILTIN_STOPS = {"plain": ("\nUser:",), "llama-2": ("[INST]",)}

_ARCH_DEFAULT = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "llama": "llama-2", "qwen2": "chatml", "qwen3": "chatml", "qwen2moe": "chatml",
}


@dataclass(frozen=True)
class ChatTemplate:
    name: str  # a built-in name, or "gguf" / "jinja" for a Jinja template
    source: str | None = None  # the Jinja text, for Jinja templates

    def render(self, messages: Sequence[Any], bos: str = "", eos: str = "", thinking: bool = True) -> list[Segment]:
        if self.source is None:
            return BUILTIN[self.name](messages)
        return [_m(_render_jinja(self.source, messages, bos, eos, thinking))]

    @property
    def can_switch_thinking(self) -> bool:
        """The template reads `enable_thinking` (Qwen3 and others): thinking can be turned off."""
        return bool(self.source) and "enable_thinking" in (self.source or "")

    @property
    def extra_stops(self) -> tuple[str, ...]:
        return BUILTIN_STOPS.get(self.name, ())


def choose_template(override: str, gguf_template: str | None, architecture: str) -> ChatTemplate:
    """Config override first, then the file's own template, then one chosen by architecture."""
    override = (override or "").strip()
    if override:
        if override in BUILTIN:
            return ChatTemplate(override)
        if "{%" in override or "{{" in override:
            _compile(override)
            return ChatTemplate("jinja", override)
        names = ", ".join(sorted(BUILTIN))
        raise UsageError(f"chat_template: unknown template {override!r} (built-in: {names}, or a Jinja string)")
    if gguf_template:
        try:
            _compile(gguf_template)
            return ChatTemplate("gguf", gguf_template)
        except UsageError:
            pass  # a broken template in the file: fall back to the architecture's format
    return ChatTemplate(_ARCH_DEFAULT.get(architecture, "chatml"))


def segments_text(segments: Sequence[Segment]) -> str:
    return "".join(s.text for s in segments)


def merge_segments(segments: Sequence[Segment]) -> list[Segment]:
    """Join neighbours of the same kind, so tokenisation sees text as llama.cpp would."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.text:
            continue
        if out and out[-1].special == seg.special:
            out[-1] = Segment(out[-1].text + seg.text, seg.special)
        else:
            out.append(seg)
    return out


def _compile(source: str) -> Any:
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover
        raise UsageError("Jinja chat templates need jinja2: pip install jinja2") from None
    from jinja2 import TemplateError

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise UsageError(f"chat_template: invalid Jinja template: {exc}") from None


def _render_jinja(source: str, messages: Sequence[Any], bos: str, eos: str, thinking: bool = True) -> str:
    from jinja2 import TemplateError

    template = _compile(source)
    try:
        return template.render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True, bos_token=bos, eos_token=eos, enable_thinking=thinking,
        )
    except TemplateError as exc:
        raise UsageError(f"the model's chat template refused this conversation: {exc}") from None
