"""The OpenAI-compatible HTTP backend: a model served by vLLM, llama-server, Ollama, TGI...

When a model outgrows one machine it is served by an engine built for that, and aigc-chat
becomes a client of its `/v1/chat/completions`. The `openai` package does the HTTP and the
server-sent events; this module adds what a chat client needs on top:

* cancelling is immediate: the request runs on a helper thread, so the caller never sits in
  a blocking read, and a cancelled or abandoned reply shuts its socket down at once (the
  server sees the disconnect and stops generating);
* every failure (refused, timed out, 401, 404, 429, 5xx, connection lost mid-reply) becomes
  one line naming the server, never the API key;
* what the server sends is bounded (backends/openai_http.py): every body is cut off past its
  limit after inflating, HTML or a malformed model list is named for what it is, and a reply
  that sends only keep-alives or empty chunks ends after `read_timeout` seconds without text
  (the timeout counts text, not bytes);
* the key is read from the environment variable the config names, at connect time, and is
  kept nowhere of ours.

`openai` is imported on first use, not with this module, so `--help` and config validation
stay fast and work without it.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from aigc_chat.backends.base import Backend, DoctorLine, EngineEnd, Option
from aigc_chat.chat_types import BackendInfo, Message, ProgressCallback
from aigc_chat.errors import BackendError, UsageError
from aigc_chat.params import GenerationParams
from aigc_chat.reasoning import Reasoning
from aigc_chat.sanitize import one_line, sanitize

# Parameters every OpenAI-compatible server takes, and those only some accept as extra fields.
STANDARD_PARAMS = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed"})
EXTRA_PARAMS = frozenset({"top_k", "min_p", "repeat_penalty", "thinking"})
# OpenAI's own limit; our stop filter still applies every stop string client-side.
MAX_SERVER_STOPS = 4
# How often the caller's thread looks at the cancel flag while it waits for the next chunk
# (an Event cannot wake a queue wait; 100 wake-ups a second cost nothing measurable).
POLL_S = 0.01
NO_KEY = "no-key"  # servers without auth ignore the header; the client library wants one
E = TypeVar("E", bound=BaseException)


def _check_url(v: Any) -> str | None:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return 'must be an http:// or https:// URL, e.g. "http://127.0.0.1:8080/v1"'
    return None


def _check_env_name(v: Any) -> str | None:
    if v == "" or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        return None
    return "must be the name of an environment variable (letters, digits, _), or \"\" for no key"


def _check_positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0 (seconds)"


def _check_retries(v: Any) -> str | None:
    return None if 0 <= v <= 10 else "must be between 0 and 10"


def _check_ctx(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0 (0 = as the server reports, or unknown)"


def _check_penalty_field(v: Any) -> str | None:
    return None if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) else "must be a field name"


class OpenAIBackend(Backend):
    name = "openai"
    supported_params = STANDARD_PARAMS | EXTRA_PARAMS
    OPTIONS = {
        "base_url": Option("http://127.0.0.1:8080/v1", str, "the server's OpenAI API root (usually ends in /v1)",
                           _check_url),
        "api_key_env": Option("OPENAI_API_KEY", str,
                              'name of the environment variable holding the API key ("" = none)', _check_env_name),
        "connect_timeout": Option(5.0, float, "seconds to wait for the connection", _check_positive),
        "read_timeout": Option(120.0, float,
                               "seconds to wait for the reply's next text (keep-alives and empty chunks do not "
                               "count; the first token of a long prompt may take a while)", _check_positive),
        "max_retries": Option(0, int, "retries of a failed request (0: fail fast with the real error)", _check_retries),
        "context_length": Option(0, int,
                                 "the served context in tokens, when the server does not report it (0 = unknown)",
                                 _check_ctx),
        "sampler_extras": Option(True, bool,
                                 "send top_k, min_p and repeat_penalty as extra fields (llama.cpp and vLLM honour "
                                 "them; turn off for Ollama, which ignores them, and for servers that reject unknown "
                                 "fields)"),
        "repeat_penalty_field": Option("repeat_penalty", str,
                                       'field name for repeat_penalty: "repeat_penalty" (llama.cpp, Ollama) '
                                       'or "repetition_penalty" (vLLM, TGI)', _check_penalty_field),
        "stream_usage": Option(True, bool,
                               "ask the server for token usage at the end of each reply "
                               "(stream_options.include_usage)"),
        "extra_body": Option({}, dict,
                             "more request fields sent as they are, "
                             "e.g. { chat_template_kwargs = { enable_thinking = false } }"),
    }

    def __init__(self, model: str | None, options: dict[str, Any] | None = None) -> None:
        super().__init__(model, options)
        # The config file's value was checked already; --base-url arrives here unchecked.
        reason = _check_url(str(self.options["base_url"]))
        if reason:
            raise UsageError(f"openai base_url {sanitize(display_url(str(self.options['base_url'])))!r}: {reason}")
        # Honest warnings: without the extra fields only the standard parameters reach the server.
        self.supported_params = STANDARD_PARAMS | (EXTRA_PARAMS if self.options["sampler_extras"] else frozenset())
        self._client: Any = None
        self._model_id: str | None = None
        self._context_length = int(self.options["context_length"])
        self._usage_source = "not yet known"
        self._send_usage_option = bool(self.options["stream_usage"])

    # -- connection -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL as shown to the user: without any user:password part."""
        return display_url(self.options["base_url"])

    def _api(self) -> Any:
        if self._client is None:
            openai = import_openai()
            from aigc_chat.backends import openai_http

            env = self.options["api_key_env"]
            key = os.environ.get(env, "") if env else ""
            self._client = openai.OpenAI(
                api_key=key or NO_KEY,
                base_url=self.options["base_url"].rstrip("/"),
                timeout=openai.Timeout(float(self.options["read_timeout"]),
                                       connect=float(self.options["connect_timeout"])),
                max_retries=int(self.options["max_retries"]),
                http_client=openai_http.client(),  # every body bounded (openai_http's notes)
            )
        return self._client

    def _fetch_models(self, tolerate_404: bool = False) -> list[dict[str, Any]] | None:
        """GET /models as plain dicts; None when the server has no such route and
        `tolerate_404` (a model name was given, so we can still try to chat). The body is
        parsed here, not by the openai package: a reply that is not a model list is said to
        be one in a line, with no Pydantic warnings."""
        openai = import_openai()
        try:
            raw = self._api().models.with_raw_response.list()
        except openai.NotFoundError as exc:
            if tolerate_404:
                return None
            raise BackendError(self._explain(exc, "listing models")) from None
        except Exception as exc:  # noqa: BLE001 - any failure here is one line for the user
            raise BackendError(self._explain(exc, "listing models")) from None
        return self._model_list(raw.http_response)

    def _model_list(self, response: Any) -> list[dict[str, Any]]:
        """The `data` of a model list, checked for its Content-Type and its shape."""
        from aigc_chat.backends.openai_http import describe_type

        content_type = response.headers.get("content-type", "")
        kind = describe_type(content_type)
        hint = "is base_url right? It usually ends in /v1"
        if content_type and kind != "JSON":
            raise BackendError(f"{self.url} answered with {kind}, not an OpenAI-compatible API ({hint})")
        try:
            data = json.loads(response.content)
        except (ValueError, RecursionError):
            raise BackendError(f"{self.url} answered with something that is not JSON, "
                               f"not an OpenAI-compatible API ({hint})") from None
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str)
                                                   for m in models):
            raise BackendError(f"{self.url} answered with JSON that is not a model list "
                               f'(expected {{"data": [{{"id": ...}}, ...]}}; {hint})')
        return models

    def list_models(self) -> list[str]:
        """What the server offers (GET /models); one clear line if it cannot be asked.
        The names come from the server, so they are made safe to print, one line each."""
        return [one_line(m["id"]) for m in self._fetch_models() or [] if m["id"]]

    @classmethod
    def doctor_lines(cls, options: Mapping[str, Any]) -> list[DoctorLine]:
        """Where replies would come from and whether a key is set; the server itself is not
        contacted (doctor must answer offline; `aigc-chat models --backend openai` asks it)."""
        import importlib.util

        if importlib.util.find_spec("openai") is None:
            return [DoctorLine("openai backend", "unavailable: pip install 'aigc-chat[openai]'",
                               "the openai backend needs the openai package: pip install 'aigc-chat[openai]'")]
        env = str(options.get("api_key_env", ""))
        key = f"key in ${env}: {'set' if os.environ.get(env) else 'not set'}" if env else "no key"
        url = display_url(str(options.get("base_url", "")))
        return [DoctorLine("openai server", f"{url} (not contacted); {key}")]

    # -- loading ------------------------------------------------------------------------
    def load(self, progress: ProgressCallback | None = None) -> None:
        """A cheap check that the server is there, takes our key and serves the model."""
        report = progress or (lambda _msg: None)
        report(f"connecting to {self.url}")
        models = self._fetch_models(tolerate_404=bool(self.model))
        ids = [m["id"] for m in models or [] if m["id"]]
        if self.model:
            if models is not None and self.model not in ids:
                offers = ", ".join(one_line(i) for i in ids[:8]) + (", ..." if len(ids) > 8 else "") or "nothing"
                raise BackendError(
                    f"the server at {self.url} does not serve model {one_line(self.model)!r} (it offers: {offers})"
                )
            self._model_id = self.model
        else:
            if not ids:
                raise BackendError(
                    f"the server at {self.url} lists no models; name one with --model or model = \"...\" in the config"
                )
            self._model_id = ids[0]
        if not self._context_length and models:
            entry = next((m for m in models if m.get("id") == self._model_id), {})
            self._context_length = reported_context_length(entry)
        report("ready")

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing must never fail the caller
                pass
            self._client = None

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            model=sanitize(self._model_id or self.model or ""),
            context_length=self._context_length,
            device=f"server {self.url}",
            gpu_offload=False,
            details={
                "base_url": self.url,
                "api_key_env": self.options["api_key_env"],
                "usage": self._usage_source,
            },
        )

    # -- generation -------------------------------------------------------------------
    def request_body(self, messages: Sequence[Message], params: GenerationParams) -> dict[str, Any]:
        """The chat.completions.create() arguments for these messages and parameters."""
        body: dict[str, Any] = {
            "model": self._model_id or self.model or "",
            "messages": [m.to_dict() for m in messages],
            "stream": True,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.stop:
            body["stop"] = list(params.stop[:MAX_SERVER_STOPS])
        if params.seed is not None:
            body["seed"] = params.seed
        if self._send_usage_option:
            body["stream_options"] = {"include_usage": True}
        extra: dict[str, Any] = {}
        if self.options["sampler_extras"]:
            extra["top_k"] = params.top_k
            extra["min_p"] = params.min_p
            extra[self.options["repeat_penalty_field"]] = params.repeat_penalty
        if not params.thinking:  # vLLM, llama-server and SGLang pass these to the chat template
            extra["chat_template_kwargs"] = {"enable_thinking": False}
        extra.update(dict(self.options["extra_body"]))  # the user's explicit fields win
        if extra:
            body["extra_body"] = extra
        return body

    def _generate(
        self, messages: Sequence[Message], params: GenerationParams, cancel: threading.Event
    ) -> Iterator[str | EngineEnd]:
        if not (self._model_id or self.model):
            self.load()
        call = _StreamingCall(self, self.request_body(messages, params))
        call.start()
        finish: Literal["stop", "length"] | None = None
        got_text = got_chunk = False
        usage: Any = None
        # The read timeout counts text, not bytes: keep-alive comments and empty chunks reset
        # httpx's timer, so a server sending only those would hold a reply forever. From the
        # moment the reply opens, each `read_timeout` seconds must bring some text.
        patience = float(self.options["read_timeout"])
        last_text: float | None = None  # monotonic time of the reply's opening, then of its last text
        try:
            while True:
                try:
                    kind, value = call.items.get(timeout=POLL_S)
                except queue.Empty:
                    if cancel.is_set():
                        return  # ChatStream sees the event and records 'cancelled'
                    if last_text is not None and time.monotonic() - last_text > patience:
                        raise BackendError(self._no_text(got_text, patience)) from None
                    continue
                if kind == "error":
                    if call.retry_without_usage(value):
                        continue
                    phase = "mid-reply" if got_chunk else "waiting" if call.streaming else "request"
                    raise BackendError(self._explain(value, phase))
                if kind == "open":
                    last_text = time.monotonic()
                    continue
                if kind == "done":
                    break
                got_chunk = True
                try:
                    pieces, chunk_usage, chunk_finish = _read_chunk(value)
                except (AttributeError, TypeError, ValueError):
                    raise BackendError(f"the server at {self.url} sent a reply that is not an OpenAI chat "
                                       "completion stream (a chunk of the wrong shape)") from None
                usage = chunk_usage if chunk_usage is not None else usage
                finish = chunk_finish or finish
                for piece in pieces:
                    got_text = True
                    last_text = time.monotonic()
                    yield piece
                if last_text is not None and time.monotonic() - last_text > patience:
                    raise BackendError(self._no_text(got_text, patience))
        finally:
            call.abort()
        if finish is None:
            # Every OpenAI-compatible server ends a reply with a finish reason; a stream that
            # just stops was cut short (llama-cpp-python's server does this, with a 200 and
            # no body, when the prompt exceeds its context).
            if got_text:
                raise BackendError(f"the server at {self.url} cut the reply short without saying why (see its log)")
            raise BackendError(
                f"the server at {self.url} ended the reply without any text or reason; "
                "the conversation may exceed its context (see its log)"
            )
        prompt_tokens = getattr(usage, "prompt_tokens", None) if usage is not None else None
        completion_tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
        self._usage_source = (
            "reported by the server" if usage is not None
            else "not reported by the server: prompt tokens unknown (0), completion tokens counted from streamed chunks"
        )
        yield EngineEnd(finish, prompt_tokens, completion_tokens)

    # -- errors -------------------------------------------------------------------------
    def _no_text(self, got_text: bool, patience: float) -> str:
        """No text for `read_timeout` seconds, whatever else came (keep-alives, empty chunks)."""
        if got_text:
            return (f"the server at {self.url} sent no text for {patience:g} s mid-reply "
                    "(raise [openai] read_timeout if it is just slow)")
        return (f"the server at {self.url} did not start the reply within {patience:g} s "
                "(a long prompt on a slow server? raise [openai] read_timeout)")

    def _explain(self, exc: BaseException, phase: str) -> str:
        """One line for the user: what failed, where, and what to do; never the API key."""
        line = explain_error(
            exc, self.url, self._model_id or self.model or "", phase,
            self.options["api_key_env"], float(self.options["read_timeout"]),
        )
        env = self.options["api_key_env"]
        key = os.environ.get(env, "") if env else ""
        if key and len(key) >= 4:
            line = line.replace(key, "***")
        return line


_PLAIN = (str, bytes, int, float, list, dict)  # what a parsed choice or delta is not


def _read_chunk(chunk: Any) -> tuple[list[str | Reasoning], Any, Literal["stop", "length"] | None]:
    """(text and reasoning pieces, usage, finish reason) of one streamed chunk. A chunk of
    the wrong shape (`choices` a string, a delta a list...) raises AttributeError or
    TypeError, which the caller reports as such."""
    pieces: list[str | Reasoning] = []
    finish: Literal["stop", "length"] | None = None
    choices = chunk.choices or []
    if not isinstance(choices, list):  # the openai package builds chunks without validating them
        raise TypeError("choices is not a list")
    for choice in choices:
        if isinstance(choice, _PLAIN) or isinstance(choice.delta, _PLAIN):
            raise TypeError("a choice or its delta is not an object")
        if choice.index not in (0, None):
            continue
        delta = choice.delta
        # servers that parse the thinking send it apart: `reasoning_content`
        # (llama-server, vLLM, DeepSeek) or `reasoning` (Ollama, OpenRouter)
        thought = _reasoning_of(delta)
        if thought:
            pieces.append(Reasoning(thought))
        text = getattr(delta, "content", None) if delta else None
        if text:
            if not isinstance(text, str):
                raise TypeError("content is not text")
            pieces.append(text)
        if choice.finish_reason:
            finish = "length" if choice.finish_reason == "length" else "stop"
    return pieces, getattr(chunk, "usage", None), finish


def _reasoning_of(delta: Any) -> str:
    """The reasoning text of a streamed delta, whichever field the server puts it in."""
    if delta is None:
        return ""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


class _StreamingCall:
    """One chat request on a helper thread, its chunks handed over through a queue.

    The caller's thread never blocks in a socket read, so it can honour a cancel at once;
    `abort()` shuts the socket down, which ends the read on the helper thread and tells
    the server the client is gone.
    """

    def __init__(self, backend: OpenAIBackend, body: dict[str, Any]) -> None:
        self.backend = backend
        self.body = body
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.streaming = False  # response headers received
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._finished = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="openai-stream", daemon=True)
        self._thread.start()

    def retry_without_usage(self, exc: BaseException) -> bool:
        """Servers that reject stream_options get the request again without it (once)."""
        status = getattr(exc, "status_code", None)
        if status not in (400, 422) or "stream_options" not in self.body:
            return False
        if "stream_options" not in str(getattr(exc, "message", exc)).lower().replace(" ", "_"):
            return False
        self.backend._send_usage_option = False
        del self.body["stream_options"]
        self.start()
        return True

    def _run(self) -> None:
        try:
            stream = self.backend._api().chat.completions.create(**self.body)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread
            self.items.put(("error", exc))
            return
        with self._lock:
            self._stream = stream
            self.streaming = True
            stopped = self._stopped.is_set()
        if stopped:
            _shutdown(stream)
            _quiet_close(stream)
            return
        problem = _not_an_event_stream(stream)
        if problem is not None:
            self.items.put(("error", problem))
            _quiet_close(stream)
            return
        self.items.put(("open", None))
        try:
            for chunk in stream:
                if self._stopped.is_set():
                    break
                self.items.put(("chunk", chunk))
            else:
                with self._lock:
                    self._finished = True
                self.items.put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread unless it stopped us
            if not self._stopped.is_set():
                self.items.put(("error", exc))
        finally:
            _quiet_close(stream)

    def abort(self) -> None:
        """Stop now: a reply still streaming has its socket shut down."""
        with self._lock:
            self._stopped.set()
            if self._stream is not None and not self._finished:
                _shutdown(self._stream)


def _not_an_event_stream(stream: Any) -> BaseException | None:
    """A reply that is not server-sent events (HTML from a web server, a JSON page) is named
    for what it is, instead of being read as a stream that ends without text."""
    from aigc_chat.backends.openai_http import ReplyProblem, describe_type

    response = getattr(stream, "response", None)
    content_type = response.headers.get("content-type", "") if response is not None else ""
    if not content_type or content_type.split(";")[0].strip().lower() == "text/event-stream":
        return None
    return ReplyProblem(f"answered with {describe_type(content_type)}, not an OpenAI-compatible event stream "
                        "(is base_url right? It usually ends in /v1)")


def _shutdown(stream: Any) -> None:
    """Shut the response's socket down: unblocks a read on another thread at once (closing
    the file descriptor would not) and the server sees the client leave."""
    try:
        network = stream.response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


def _quiet_close(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - the connection is already gone
        pass


# -- helpers ----------------------------------------------------------------------------


def import_openai() -> Any:
    try:
        import openai
    except ImportError:
        raise UsageError("the openai backend needs the openai package: pip install 'aigc-chat[openai]'") from None
    return openai


def display_url(url: str) -> str:
    """The URL without credentials, safe to print."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts).rstrip("/")


def reported_context_length(entry: dict[str, Any]) -> int:
    """The context size a /models entry reports, where the server says it (0 otherwise).
    vLLM: max_model_len; llama-server: meta.n_ctx; some proxies: context_length/window."""
    candidates = [entry.get("max_model_len"), entry.get("context_length"), entry.get("context_window")]
    meta = entry.get("meta")
    if isinstance(meta, dict):
        candidates.append(meta.get("n_ctx"))
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def _status_detail(exc: Any) -> str:
    """The server's own words from an error body, made safe and short."""
    body = getattr(exc, "body", None)
    text = ""
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                text = value
                break
            if isinstance(value, list) and value:  # FastAPI validation errors
                text = str(value[0].get("msg", value[0]) if isinstance(value[0], dict) else value[0])
                break
    elif isinstance(body, str):
        text = body
    text = " ".join(sanitize(text).split())
    return text[:200] + ("…" if len(text) > 200 else "")


def _cause_of(exc: BaseException, kind: type[E]) -> E | None:
    """`exc` or the first exception in its chain of causes that is a `kind`."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return _cause_of(exc, kind) is not None


def explain_error(
    exc: BaseException, url: str, model: str, phase: str, key_env: str, read_timeout: float,
) -> str:
    """Map an openai / transport exception to one line. `phase`: 'listing models',
    'request' (no answer yet), 'waiting' (answered, no text yet) or 'mid-reply'."""
    openai = import_openai()
    from aigc_chat.backends.openai_http import ReplyProblem

    problem = _cause_of(exc, ReplyProblem)
    if problem is not None:  # a body over its limit, not an event stream, not inflatable
        return f"the server at {url} {problem.what}"
    status = getattr(exc, "status_code", None)
    detail = _status_detail(exc)
    more = f": {detail}" if detail else ""
    # openai 1.x lets transport errors out of a stream unwrapped; later versions wrap them.
    transport = type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2")
    if isinstance(exc, openai.APITimeoutError) or (transport and "Timeout" in type(exc).__name__):
        if phase == "mid-reply":
            return (f"the server at {url} stopped sending for {read_timeout:g} s mid-reply "
                    "(raise [openai] read_timeout if it is just slow)")
        if phase == "waiting":
            return (f"the server at {url} did not start the reply within {read_timeout:g} s "
                    "(a long prompt on a slow server? raise [openai] read_timeout)")
        what = "to the model list" if phase == "listing models" else "before the reply started"
        return (f"the server at {url} did not answer in time ({what}); is it overloaded? "
                "([openai] connect_timeout and read_timeout set the limits)")
    if isinstance(exc, openai.APIConnectionError) or transport:
        if phase == "mid-reply":
            return f"the connection to {url} was lost mid-reply (the server stopped or closed it)"
        if phase == "waiting":
            return f"the connection to {url} was lost before the reply started (the server stopped or closed it)"
        if _caused_by(exc, ConnectionRefusedError) or "refused" in str(exc.__cause__ or "").lower():
            return f"cannot connect to {url}: connection refused (is the server running, and is base_url right?)"
        cause = exc.__cause__ or exc.__context__
        why = " ".join(sanitize(str(cause)).split())[:160] if cause else "connection error"
        return f"cannot connect to {url}: {why or type(cause).__name__}"
    if isinstance(exc, openai.APIStatusError):
        if status == 401:
            hint = (f"set the key in ${key_env}" if key_env and not os.environ.get(key_env)
                    else f"check the key in ${key_env}" if key_env else "set [openai] api_key_env")
            return f"the server at {url} refused the API key (401 Unauthorized); {hint}"
        if status == 403:
            return f"the server at {url} denied access (403 Forbidden){more}"
        if status == 404:
            if phase == "listing models":
                return (f"the server at {url} has no /models (404 Not Found); "
                        "is base_url right (it usually ends in /v1)?")
            return (f"the server at {url} answered 404 Not Found for model {model!r}{more}; "
                    f"`aigc-chat models --backend openai` lists what it serves, and base_url usually ends in /v1")
        if status == 429:
            retry = exc.response.headers.get("retry-after") if getattr(exc, "response", None) is not None else None
            when = f"; retry after {sanitize(retry)[:20]} s" if retry else "; try again later"
            return f"the server at {url} is rate-limiting requests (429 Too Many Requests){when}"
        if status is not None and status >= 500:
            return f"the server at {url} failed ({status} server error){more}"
        return f"the server at {url} rejected the request ({status}){more}"
    if isinstance(exc, openai.APIError):
        message = " ".join(sanitize(str(getattr(exc, "message", exc))).split())[:200]
        return f"the server at {url} reported an error {phase}: {message}"
    text = " ".join(sanitize(str(exc)).split())[:200]
    return f"unexpected reply from the server at {url} ({phase}): {type(exc).__name__}: {text}"
