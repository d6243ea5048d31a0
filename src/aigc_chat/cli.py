"""The `aigc-chat` command: argument parsing and dispatch, nothing heavy at import time.

`aigc-chat --help` must answer in well under 0.3 s, so this module imports only argparse;
backends, Textual and torch are imported by the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from aigc_chat import __version__
from aigc_chat.argtypes import OneLineParser, conversation_id, integer, number, stop_text, text

PROG = "aigc-chat"
SUBCOMMANDS = {
    "config": "show the config file path or the effective settings",
    "doctor": "check the installation: versions, GPU offload, paths, default model",
    "models": "list the models a backend offers",
    "pull": "download a GGUF model from a Hugging Face hub (hf:ORG/REPO:QUANT) into the hub cache",
    "roles": "list the roles (named presets: system prompt, sampling, model) or show one",
    "history": "list, show, search and export saved conversations",
    "gan": "sample or train a GAN and draw its images in the terminal",
}


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by the TUI, one-shot mode and `models`."""
    p.add_argument("--backend", "-b", metavar="NAME", help="backend: llama, torch, openai, or a plug-in's")
    p.add_argument("--model", "-m", metavar="PATH|NAME",
                   help="model file (GGUF, checkpoint), a name from `aigc-chat models`, or a server's model name")
    p.add_argument("--config", metavar="PATH", help="config file (default: see `aigc-chat config path`)")
    p.add_argument("--device", metavar="DEV", help="torch backend device: auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--base-url", metavar="URL", help="openai backend: the server's API root, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--threads", metavar="N", type=integer("a number of threads from 1 to 512", 1, 512),
                   help="CPU threads for llama/torch (default: chosen before each reply from the free cores)")


def build_parser() -> argparse.ArgumentParser:
    sub_help = "\n".join(f"  {name:<9} {text}" for name, text in SUBCOMMANDS.items())
    p = OneLineParser(
        prog=PROG,
        description="Chat with local language models in the terminal. Without --prompt, opens the TUI.",
        epilog=f"subcommands (aigc-chat SUBCOMMAND --help):\n{sub_help}\n\n"
        "exit codes: 0 ok, 1 runtime error, 2 usage or config error, 130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--prompt", "-p", metavar="TEXT", type=text,
                   help="one-shot: answer TEXT on stdout and exit ('-' reads only stdin)")
    p.add_argument("--system", "-s", metavar="TEXT", type=text, help="system prompt")
    p.add_argument("--role", metavar="NAME", type=text,
                   help="a role from `aigc-chat roles`: its system prompt, sampling and model (flags still win)")
    p.add_argument("--file", "-f", action="append", metavar="PATH", type=text, default=[],
                   help="one-shot: put a text file into the question, named (repeatable; '-' is stdin, as 'stdin')")
    add_model_flags(p)
    p.add_argument("--yes", "-y", action="store_true",
                   help="with --model hf:ORG/REPO:QUANT: download it without asking (needed when not on a terminal)")
    g = p.add_argument_group("generation")
    g.add_argument("--temperature", "-t", type=number(), metavar="X")
    g.add_argument("--top-p", type=number(), metavar="X")
    g.add_argument("--top-k", type=integer(), metavar="N")
    g.add_argument("--min-p", type=number(), metavar="X")
    g.add_argument("--repeat-penalty", type=number(), metavar="X")
    g.add_argument("--max-tokens", "-n", type=integer(), metavar="N")
    g.add_argument("--stop", action="append", metavar="TEXT", type=stop_text,
                   help=r"stop sequence (repeatable); \n \t \r \\ \xHH \uHHHH are escapes")
    g.add_argument("--seed", type=integer(), metavar="N", help="same seed, same text")
    g.add_argument("--no-thinking", dest="thinking", action="store_const", const=False, default=None,
                   help="ask a reasoning model to answer without thinking first (where its template allows)")
    o = p.add_argument_group("one-shot output")
    o.add_argument("--json", action="store_true", help="print one JSON object: text, finish reason, usage")
    o.add_argument("--verbose", "-v", action="store_true", help="model and speed figures on stderr")
    o.add_argument("--raw", action="store_true", help="do not neutralise control characters in the output")
    o.add_argument("--show-reasoning", action="store_true",
                   help="a reasoning model's thinking on stderr (dimmed on a terminal); stdout stays the answer")
    h = p.add_argument_group("history")
    h.add_argument("--no-history", action="store_true", help="do not save this conversation")
    h.add_argument("--continue", "-c", dest="continue_", action="store_true", help="continue the latest conversation")
    h.add_argument("--conversation", metavar="ID", type=conversation_id, help="continue conversation ID")
    p.add_argument("--inline", action="store_true",
                   help="TUI: run below the shell prompt, not on the alternate screen; the conversation "
                        "is printed into the terminal's scrollback on quit ([tui] inline)")
    h.add_argument("--regenerate", action="store_true",
                   help="with --conversation ID or --continue, and no prompt: print a new reply to the "
                        "last question, kept beside the old one as an alternative")
    h.add_argument("--compact", action="store_true",
                   help="with --continue or --conversation ID: summarise the older part into a new branch "
                        "(the original is kept), then answer the prompt, if there is one")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    stdout_closed = _ensure_std_streams()
    try:
        if stdout_closed:
            from aigc_chat.errors import AigcError

            raise AigcError("stdout is closed: there is nowhere to write the output")
        return _dispatch(args_list)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as exc:  # the last line of defence: one line, no traceback (re-raised under DEBUG)
        from aigc_chat.errors import AigcError, OutputError
        from aigc_chat.sanitize import one_line

        if isinstance(exc, OutputError):
            _silence_stdout()  # what is still buffered cannot be written either
        if isinstance(exc, AigcError):
            # Messages quote file names, server replies and model metadata: untrusted text,
            # and an error is one line (a name with a newline must not forge a second one).
            sys.stderr.write(f"{PROG}: error: {one_line(str(exc))}\n")
            return exc.exit_code
        if os.environ.get("AIGC_CHAT_DEBUG"):
            raise
        sys.stderr.write(
            f"{PROG}: internal error: {type(exc).__name__}: {one_line(str(exc))} "
            "(set AIGC_CHAT_DEBUG=1 for a traceback)\n"
        )
        return 1


class _GuardedOutput:
    """sys.stdout, with a failed write (a full disk, `> /dev/full`, an I/O error) turned
    into one error line and exit 1 instead of a traceback. A closed pipe stays a
    BrokenPipeError: that ends quietly. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._error(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> Exception:
        from aigc_chat.errors import OutputError

        return OutputError(f"cannot write to {self._name}: {exc.strerror or exc}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _ensure_std_streams() -> bool:
    """Give every closed standard descriptor /dev/null, before anything opens a file.

    With fd 1 closed (`>&-`) the next file opened (the history database) would get fd 1,
    and anything written to "stdout" by native code would land in it. A closed stderr
    (`2>&-`) must not cost the answer: status lines go to /dev/null instead. Returns
    whether stdout was closed (then there is nowhere to put the answer)."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
            try:
                got = os.open(os.devnull, os.O_RDWR)
                if got != fd:
                    os.dup2(got, fd)
                    os.close(got)
            except OSError:
                pass
    if sys.stderr is None or 2 in closed:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115 - for the run
    if sys.stdin is None or 0 in closed:
        sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115 - sys.stdin for the run
    if sys.stdout is not None and 1 not in closed:
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors="replace")  # a lone surrogate must not end the run
        if not isinstance(sys.stdout, _GuardedOutput):
            sys.stdout = _GuardedOutput(sys.stdout, "stdout")
        return False
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - /dev/null now
    return True


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        name, rest = argv[0], argv[1:]
        if name == "gan":
            from aigc_chat.gan.cli import main as gan_main

            return gan_main(rest)
        if name == "history":
            from aigc_chat.history_cli import main as history_main

            return history_main(rest)
        if name == "pull":
            from aigc_chat.pull_cli import main as pull_main

            return pull_main(rest)
        from aigc_chat import commands

        return commands.run(name, rest)
    args = build_parser().parse_args(argv)
    config = _load(args)
    if config.model and config.model.startswith("hf:"):  # a hub model: the cached file, else pulled first
        from dataclasses import replace

        from aigc_chat.pull_cli import resolve_model_ref

        config = replace(config, model=resolve_model_ref(config.model, args.yes))
    from aigc_chat.loader import model_settings_for

    config = model_settings_for(config)  # the model's own sampling, under the flags
    if args.regenerate:
        from aigc_chat.errors import UsageError

        if args.prompt is not None or getattr(args, "file", None):
            raise UsageError("--regenerate answers the last question again: it takes no --prompt or --file")
        if not (args.conversation or args.continue_):
            raise UsageError("--regenerate needs the conversation: --conversation ID or --continue")
        if args.no_history:
            raise UsageError("--regenerate works on a saved conversation: not with --no-history")
    if args.inline and (args.prompt is not None or args.regenerate):
        from aigc_chat.errors import UsageError

        raise UsageError("--inline is for the TUI: --prompt already prints its reply as plain text")
    if args.compact:
        from aigc_chat.errors import UsageError

        if not (args.conversation or args.continue_):
            raise UsageError("--compact needs the conversation: --conversation ID or --continue")
        if args.no_history or args.regenerate:
            raise UsageError("--compact adds a branch to a saved conversation: not with "
                             + ("--no-history" if args.no_history else "--regenerate"))
    if args.prompt is not None or args.regenerate or args.compact:
        from aigc_chat.oneshot import run_oneshot

        return run_oneshot(config, args)
    if getattr(args, "file", None):
        from aigc_chat.errors import UsageError

        raise UsageError("--file goes with --prompt; in the TUI, attach files with /file PATH")
    from aigc_chat.tui.launch import run_tui

    return run_tui(config, args)


def _load(args: argparse.Namespace):
    """Config file < environment < role (`--role`) < flags."""
    from pathlib import Path

    from aigc_chat.config import load_config

    config = load_config(Path(args.config).expanduser() if getattr(args, "config", None) else None)
    gen = {}
    for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed", "thinking"):
        value = getattr(args, name, None)
        if value is not None:
            gen[name] = value
    if getattr(args, "stop", None):
        gen["stop"] = tuple(args.stop)
    config = config.with_overrides(
        backend=getattr(args, "backend", None),
        model=getattr(args, "model", None),
        system_prompt=getattr(args, "system", None),
        **gen,
    )
    if getattr(args, "role", None):  # its system prompt and model, unless flags name their own
        from aigc_chat import roles

        keep = {name for flag, name in (("system", "system_prompt"), ("model", "model"), ("backend", "backend"))
                if getattr(args, flag, None) is not None}
        config = roles.apply(config, args.role, keep)
    if getattr(args, "base_url", None):  # checked by the openai backend when it is built
        config.backends.setdefault("openai", {})["base_url"] = args.base_url
    if getattr(args, "device", None):  # checked by the torch backend when it loads
        config.backends.setdefault("torch", {})["device"] = args.device
    if getattr(args, "threads", None):  # fixed: the per-reply choice (aigc_chat.cpu) is off
        for engine in ("llama", "torch"):
            config.backends.setdefault(engine, {})["n_threads"] = args.threads
    return config


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
