"""Chat templates: turn role/content messages into the prompt a model was trained on.

Built-in formats render to *segments*: template markup (parsed as special tokens) kept apart
from user and model text (never parsed as special tokens), so a message that contains
`<end_of_turn>` cannot forge a turn. Every backend tokenises the same segments, so switching
backend changes the engine, not the question. A GGUF's own Jinja template is used when it
has one; it renders to a single markup segment, as llama.cpp does. Jinja templates are
untrusted code: they are compiled and rendered in a separate process with a deadline and a
memory limit (aigc_chat.template_process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aigc_chat import template_process
from aigc_chat.errors import AigcError, ModelError, UsageError
from aigc_chat.template_process import OUTPUT_CAP, TemplateRunError
from aigc_chat.template_worker import MEMORY_HEADROOM


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
# Stop strings the built-in formats need besides the model's end-of-generation tokens: these
# two have no end-of-turn token, so the model would write the next turn's header itself. The
# backends that render these templates name them (Backend.format_stops) and ChatStream adds
# them to every turn's stops.
BUILTIN_STOPS = {"plain": ("\nUser:",), "llama-2": ("[INST]",)}

_ARCH_DEFAULT = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "llama": "llama-2", "qwen2": "chatml", "qwen3": "chatml", "qwen2moe": "chatml",
}


@dataclass(frozen=True)
class ChatTemplate:
    name: str  # a built-in name, or "gguf" / "jinja" for a Jinja template
    source: str | None = None  # the Jinja text, for Jinja templates
    section: str = "llama"  # the config section whose chat_template overrides it (for error lines)
    # The last Jinja render: a turn renders the same messages two or three times (counting,
    # fitting, the reasoning check), and a render is a round trip to the renderer process.
    _last: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def render(self, messages: Sequence[Any], bos: str = "", eos: str = "", thinking: bool = True) -> list[Segment]:
        if self.source is None:
            return BUILTIN[self.name](messages)
        key = (tuple((m.role, m.content) for m in messages), bos, eos, thinking)
        if self._last.get("key") != key:
            self._last.clear()
            self._last["text"] = _render_jinja(self, messages, bos, eos, thinking)
            self._last["key"] = key
        return [_m(self._last["text"])]

    @property
    def can_switch_thinking(self) -> bool:
        """The template reads `enable_thinking` (Qwen3 and others): thinking can be turned off."""
        return bool(self.source) and "enable_thinking" in (self.source or "")

    @property
    def extra_stops(self) -> tuple[str, ...]:
        """The stops this format needs (BUILTIN_STOPS); a Jinja template ends its turns itself."""
        return BUILTIN_STOPS.get(self.name, ())


def choose_template(override: str, gguf_template: str | None, architecture: str,
                    section: str = "llama") -> ChatTemplate:
    """Config override first, then the file's own template, then one chosen by architecture.
    `section` names the config section of the override, for error lines."""
    override = (override or "").strip()
    if override:
        if override in BUILTIN:
            return ChatTemplate(override, section=section)
        if "{%" in override or "{{" in override:
            try:
                template_process.shared().check(override)
            except TemplateRunError as exc:
                raise UsageError(f"{section}.chat_template: invalid Jinja template: {exc.detail or exc.kind}") from None
            return ChatTemplate("jinja", override, section)
        names = ", ".join(sorted(BUILTIN))
        raise UsageError(f"chat_template: unknown template {override!r} (built-in: {names}, or a Jinja string)")
    if gguf_template:
        try:
            template_process.shared().check(gguf_template)
            return ChatTemplate("gguf", gguf_template, section)
        except TemplateRunError:
            pass  # a broken template in the file: fall back to the architecture's format
    return ChatTemplate(_ARCH_DEFAULT.get(architecture, "chatml"), section=section)


def warm_renderer(override: str, gguf_template: str | None) -> None:
    """Start the renderer process early when a Jinja template will need it (choose_template
    and the first render then do not wait for it to start)."""
    if gguf_template or "{{" in (override or "") or "{%" in (override or ""):
        template_process.shared().warm()


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


def _render_jinja(template: ChatTemplate, messages: Sequence[Any], bos: str, eos: str, thinking: bool) -> str:
    """The Jinja render, in the renderer process (aigc_chat.template_process). The template's
    own raise_exception() refuses the conversation (UsageError, as before); anything else
    it does wrong (an exception, a loop past the deadline, gigabytes, a crash) is the model
    file's fault: one line naming the template and the override (ModelError, exit 1)."""
    assert template.source is not None
    variables = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "add_generation_prompt": True, "bos_token": bos, "eos_token": eos, "enable_thinking": thinking,
    }
    try:
        text = template_process.shared().render(template.source, variables)
        if not text:  # nothing to send: llama.cpp and torch would fail deep inside
            raise TemplateRunError("empty")
    except TemplateRunError as exc:
        raise template_error(template, exc) from None
    return text


def template_error(template: ChatTemplate, exc: TemplateRunError) -> AigcError:
    """The one line for a render that produced no prompt."""
    whose = "the model's chat template" if template.name == "gguf" else f"the [{template.section}] chat_template"
    if exc.kind == "refused":
        return UsageError(f"{whose} refused this conversation: {exc.detail}")
    what = {
        "timeout": f"did not finish within {exc.detail} (a loop that never ends?)",
        "memory": f"needed more than {MEMORY_HEADROOM >> 20} MiB of memory",
        "empty": "made an empty prompt",
        "too_big": f"made a prompt of {int(exc.detail or 0):,} characters, over the {OUTPUT_CAP:,} limit"
                   if exc.detail.isdigit() else "made too large a prompt",
        "syntax": f"is not valid Jinja: {exc.detail}",
    }.get(exc.kind, f"failed: {exc.detail or exc.kind}")
    if template.name == "gguf":
        hint = f'set [{template.section}] chat_template (e.g. "chatml") in config.toml to use another'
    else:
        hint = "fix it or remove it from config.toml"
    return ModelError(f"{whose} {what}; {hint}")
