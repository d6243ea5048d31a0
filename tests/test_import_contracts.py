"""Import contracts between the parts of aigc_chat, checked on every `make test`.

The core (`src/aigc_chat/*.py`: config, history, the one-shot and history commands) must
run without Textual loaded: `aigc-chat -p`, `aigc-chat history` and scripts that import the
core start faster and cannot break when the front end does. The core drives engines only
through the Backend interface (backends/base.py) and finds them through the registry; the
records both sides pass are the core's (chat_types.py). Backends are engines the core and
the TUI both drive, so they must not reach back into the front end, the CLI or the
conversation core. The GAN is drawn by the TUI's widgets (tui/gan_screen.py,
tui/gan_widgets.py), so the dependency points from tui to gan, never back.

The rules are data: one `Contract` row each in CONTRACTS (a part, the modules it must not
import, the exceptions), in the manner of import-linter's contracts; the static and the dynamic
check each run every row.

Two checks, because each misses what the other sees: the static one reads every `import`
and `from ... import` (inside functions and `if TYPE_CHECKING:` too, and literal
`importlib.import_module("...")`), so a lazy import on a path no test takes is still
caught; the dynamic one imports every module in a fresh interpreter, so an import hidden
behind a name the parser cannot see, or pulled in through a third party, is caught too.
Both name the file and line that made the offending import.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "src" / "aigc_chat"
PARTS = ("tui", "backends", "gan")  # linked in as src/aigc_chat/<part>; the real folders are at ROOT

# The one place the core may name the front end: the CLI dispatcher starts the TUI, lazily,
# inside main(), so that importing aigc_chat.cli (or running `aigc-chat -p`) loads no Textual.
# Exact (file, module) pairs; an entry that no longer matches any import fails the test, so
# the list cannot outlive the code it excuses.
CORE_TUI_DISPATCH = frozenset({("src/aigc_chat/cli.py", "aigc_chat.tui.launch")})

# What the core may use of backends/: the interface it drives and the registry that finds an
# engine by name. The records both sides pass (Message, GenerationResult, ...) are the core's
# own (aigc_chat.chat_types), so no engine's module is the core's business.
BACKEND_INTERFACE = (
    "aigc_chat.backends",  # the package itself, which `from aigc_chat.backends import registry` names
    "aigc_chat.backends.base",
    "aigc_chat.backends.base.Backend",
    "aigc_chat.backends.base.ChatStream",
    "aigc_chat.backends.registry.*",
)

# The front ends and the CLI: what drives a backend, so a backend never reaches back into it.
FRONT_ENDS = (
    "aigc_chat.tui", "aigc_chat.cli", "aigc_chat.oneshot", "aigc_chat.conversation", "aigc_chat.launch",
    "aigc_chat.commands", "aigc_chat.history_cli", "aigc_chat.pull_cli",
)


@dataclass(frozen=True)
class Import:
    file: str  # relative to ROOT, as a person would open it
    line: int
    module: str  # absolute dotted name
    lazy: bool  # inside a function: runs when called, not when the module is imported

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Contract:
    """One row: files of `part` must not import `forbidden` (each a module and everything in
    it), except the names in `allowed` ("m" is m alone, "m.*" is m and everything in it) and,
    lazily inside a function only, the exact (file, module) imports in `lazy_edges`."""

    name: str
    part: str  # "core" (src/aigc_chat/*.py), "backends", "gan"
    forbidden: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()
    lazy_edges: frozenset[tuple[str, str]] = frozenset()


CONTRACTS = (
    Contract("core-no-textual", "core", ("textual", "aigc_chat.tui"),
             "the core must not import Textual (nor the TUI, which does)", lazy_edges=CORE_TUI_DISPATCH),
    Contract("core-uses-the-backend-interface", "core", ("aigc_chat.backends",),
             "the core may import from backends/ only the interface (Backend, ChatStream) and the registry",
             allowed=BACKEND_INTERFACE),
    Contract("backends-no-front-end", "backends", ("textual", *FRONT_ENDS),
             "backends must not import Textual, a front end, the CLI or the conversation core that drives them"),
    Contract("gan-no-textual", "gan", ("textual", "aigc_chat.tui"),
             "gan must not import Textual; its widgets live in tui/gan_screen.py and tui/gan_widgets.py"),
)
PARTS_CHECKED = sorted({c.part for c in CONTRACTS})


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == a.removesuffix(".*") or (a.endswith(".*") and module.startswith(a[:-1]))
               for a in allowed)


def _lazy_edge(imp: Import, edges: frozenset[tuple[str, str]]) -> bool:
    """Whether `imp` is (part of) an allow-listed lazy import.

    `from aigc_chat.tui.app import run_tui` names aigc_chat.tui, aigc_chat.tui.app and
    aigc_chat.tui.app.run_tui: the edge itself, the package it loads on the way, and a name
    in it. A sibling such as aigc_chat.tui.chat_view is not excused.
    """
    return imp.lazy and any(
        f == imp.file and (_matches(imp.module, (edge,)) or edge.startswith(imp.module + "."))
        for f, edge in edges
    )


def violations(contract: Contract, imports: list[Import]) -> list[str]:
    """The imports that break `contract`, one line each, naming the file and line."""
    bad = []
    for imp in imports:
        if not _matches(imp.module, contract.forbidden) or _allowed(imp.module, contract.allowed):
            continue
        if _lazy_edge(imp, contract.lazy_edges):
            continue
        how = "inside a function" if imp.lazy else "at import time"
        bad.append(f"{imp.where()}: imports {imp.module} ({how})")
    return sorted(set(bad))


def files_of(part: str) -> dict[str, Path]:
    """Module name -> file, for the core (the package minus its linked parts) or one part."""
    if part == "core":
        return {("aigc_chat" if f.stem == "__init__" else f"aigc_chat.{f.stem}"): f for f in sorted(PKG.glob("*.py"))}
    out: dict[str, Path] = {}
    base = ROOT / part
    for f in sorted(base.rglob("*.py")):
        rel = f.relative_to(base).with_suffix("").parts
        if rel[-1] == "__init__":
            rel = rel[:-1]
        out[".".join(("aigc_chat", part, *rel))] = f
    return out


def imports_in(source: str, module: str, file: str, is_package: bool = False) -> Iterator[Import]:
    """Every module an import statement (or a literal import_module call) in `source` names.

    `from a import b` yields both `a` and `a.b`, since b may be a submodule: that is how
    `from aigc_chat import tui` would slip past a check on `aigc_chat.tui`.
    """
    package = module if is_package else module.rpartition(".")[0]

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = package.split(".")
        base = parts[: len(parts) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def walk(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(file, child.lineno, alias.name, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = resolve(child)
                yield Import(file, child.lineno, base, lazy)
                for alias in child.names:
                    if alias.name != "*":
                        yield Import(file, child.lineno, f"{base}.{alias.name}", lazy)
            elif (isinstance(child, ast.Call) and child.args and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)
                  and ((isinstance(child.func, ast.Attribute) and child.func.attr == "import_module")
                       or (isinstance(child.func, ast.Name) and child.func.id in {"import_module", "__import__"}))):
                yield Import(file, child.lineno, child.args[0].value, lazy)
            yield from walk(child, inner)

    yield from walk(ast.parse(source, filename=file), False)


def all_imports(part: str) -> list[Import]:
    found: list[Import] = []
    for module, path in files_of(part).items():
        rel = path.relative_to(ROOT).as_posix()
        found += imports_in(path.read_text(encoding="utf-8"), module, rel, is_package=path.stem == "__init__")
    return found


def test_the_checker_sees_lazy_relative_and_from_imports() -> None:
    """The static check is only as good as its parser: it must not miss the sneaky forms."""
    src = (
        "import os\n"
        "from aigc_chat import tui\n"
        "def f():\n"
        "    import textual.app\n"
        "    from ..tui import app\n"
        "    importlib.import_module('textual.widgets')\n"
        "g = lambda: __import__('textual')\n"
    )
    found = {(i.line, i.module, i.lazy) for i in imports_in(src, "aigc_chat.backends.x", "x.py")}
    assert (2, "aigc_chat.tui", False) in found
    assert (4, "textual.app", True) in found
    assert (5, "aigc_chat.tui.app", True) in found
    assert (6, "textual.widgets", True) in found
    assert (7, "textual", True) in found
    assert (1, "os", False) in found


def test_each_contract_row_catches_what_it_forbids() -> None:
    """The rules as data mean what they say: a forbidden import is named, an allowed one is not."""
    rows = {c.name: c for c in CONTRACTS}

    def imp(module: str, file: str = "src/aigc_chat/x.py", lazy: bool = False) -> Import:
        return Import(file, 1, module, lazy)

    core_backends = rows["core-uses-the-backend-interface"]
    fine = [imp("aigc_chat.backends"), imp("aigc_chat.backends.base"), imp("aigc_chat.backends.base.Backend"),
            imp("aigc_chat.backends.registry"), imp("aigc_chat.backends.registry.load_class")]
    assert violations(core_backends, fine) == []
    for module in ("aigc_chat.backends.base.Message", "aigc_chat.backends.llama_cpp_backend",
                   "aigc_chat.backends.registry_extra", "aigc_chat.backends.torch_gpt.backend"):
        assert violations(core_backends, [imp(module)]), module
    backends = rows["backends-no-front-end"]
    for module in ("aigc_chat.oneshot", "aigc_chat.conversation.Conversation", "aigc_chat.launch",
                   "aigc_chat.cli", "aigc_chat.tui.app", "textual.widgets"):
        assert violations(backends, [imp(module, "backends/x.py", lazy=True)]), module
    assert violations(backends, [imp("aigc_chat.conversations_extra", "backends/x.py")]) == []
    core_tui = rows["core-no-textual"]
    assert violations(core_tui, [imp("aigc_chat.tui.launch", "src/aigc_chat/cli.py", lazy=True)]) == []
    assert violations(core_tui, [imp("aigc_chat.tui.launch", "src/aigc_chat/cli.py")])  # not lazy
    assert violations(core_tui, [imp("aigc_chat.tui.chat_view", "src/aigc_chat/cli.py", lazy=True)])


@pytest.mark.parametrize("part", PARTS_CHECKED)
def test_parts_are_found(part: str) -> None:
    """An empty file list would make every contract pass: the links and folders must resolve."""
    assert len(files_of(part)) >= 3, f"no files found for {part} (is the link in src/aigc_chat/ intact?)"


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_static_import_contract(contract: Contract) -> None:
    bad = violations(contract, all_imports(contract.part))
    assert not bad, f"{contract.why}:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("contract", [c for c in CONTRACTS if c.lazy_edges], ids=lambda c: c.name)
def test_lazy_edge_allow_lists_are_exact(contract: Contract) -> None:
    """Each excused edge must still exist, or the excuse would cover a future import."""
    found = all_imports(contract.part)
    stale = {(f, edge) for f, edge in contract.lazy_edges
             if not any(i.lazy and i.file == f and _matches(i.module, (edge,)) for i in found)}
    assert not stale, f"{contract.name} excuses imports that no longer exist (remove them): {sorted(stale)}"


# Imports each module in turn in a fresh interpreter; a spy on sys.meta_path records the
# stack the first time a forbidden module is asked for, so the report names the import line.
_PROBE = r"""
import importlib, json, sys, traceback
root, modules = sys.argv[1], sys.argv[4:]
forbidden, allowed = tuple(sys.argv[2].split(",")), tuple(a for a in sys.argv[3].split(",") if a)
first = {}

def hit(name):
    return (any(name == f or name.startswith(f + ".") for f in forbidden)
            and not any(name == a.removesuffix(".*") or (a.endswith(".*") and name.startswith(a[:-1]))
                        for a in allowed))

class Spy:
    def find_spec(self, name, path=None, target=None):
        if not first and hit(name):
            first["name"] = name
            first["chain"] = [f"{fr.filename[len(root) + 1:]}:{fr.lineno}"
                              for fr in traceback.extract_stack()[:-1] if fr.filename.startswith(root + "/")]
        return None

sys.meta_path.insert(0, Spy())
for m in modules:
    importlib.import_module(m)
    loaded = sorted(k for k in sys.modules if hit(k))
    if loaded:
        print(json.dumps({"module": m, "loaded": loaded[:5], **first}))
        sys.exit(1)
print(json.dumps({"ok": len(modules)}))
"""


def probe(root: Path, forbidden: tuple[str, ...], modules: list[str], env: dict[str, str] | None = None,
          allowed: tuple[str, ...] = ()) -> dict:
    """Run _PROBE; its last stdout line is the JSON report."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(root), ",".join(forbidden), ",".join(allowed), *modules],
                          capture_output=True, text=True, timeout=120, cwd=root, env=env)
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("{"), (
        f"the probe failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report: dict = json.loads(lines[-1])
    assert ("module" in report) == (proc.returncode == 1), proc.stderr
    return report


def test_the_probe_names_the_line_that_pulled_in_a_forbidden_module(tmp_path: Path) -> None:
    (tmp_path / "fine.py").write_text("import json\n")
    (tmp_path / "middle.py").write_text("import fine\n\nimport leaf\n")
    (tmp_path / "leaf.py").write_text('"""A leaf."""\nimport textual.app\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    report = probe(tmp_path, ("textual",), ["fine", "middle"], env)
    assert report["module"] == "middle"
    assert report["chain"] == ["middle.py:3", "leaf.py:2"]


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_dynamic_import_contract(contract: Contract) -> None:
    """Importing every module of the part leaves the forbidden modules unloaded."""
    modules = [m for m in files_of(contract.part) if not m.endswith("__main__")]  # __main__ runs the CLI
    report = probe(ROOT, contract.forbidden, modules, allowed=contract.allowed)
    assert "module" not in report, (
        f"{contract.why}:\n  importing {report['module']} loaded {', '.join(report['loaded'])}\n"
        f"  first import of {report.get('name')} via: {' -> '.join(report.get('chain', [])) or '?'}"
    )
    assert report == {"ok": len(modules)}
