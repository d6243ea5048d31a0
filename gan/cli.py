"""`aigc-chat gan [sample|train|eval]`: argument parsing and the top-level error policy.

Every failure the user can cause ends as one line on stderr and exit 2 (a mistake on the
command line reads `aigc-chat gan SUB: error: ... (see aigc-chat gan SUB --help)`, as in
every aigc-chat command: aigc_chat.argtypes.OneLineParser); failures while working end as
one line and exit 1; Ctrl-C exits 130. Subcommands import their heavy modules lazily, so
`gan sample` never loads torch or scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aigc_chat.argtypes import OneLineParser, integer, non_negative, number, positive
from aigc_chat.errors import AigcError, UsageError
from aigc_chat.sanitize import one_line

if TYPE_CHECKING:
    from pathlib import Path

PROG = "aigc-chat gan"
SUBCOMMANDS = ("sample", "train", "eval")


def build_parser() -> argparse.ArgumentParser:
    from aigc_chat.gan.palettes import PALETTES
    from aigc_chat.gan.render import MODES

    parser = OneLineParser(prog=PROG,
                           description="Sample, train and evaluate the GAN; samples are drawn as terminal art.")
    sub = parser.add_subparsers(dest="command")

    def look(p: argparse.ArgumentParser) -> None:
        p.add_argument("--mode", default="auto", choices=("auto", *MODES),
                       help="how to draw: auto decides from COLORTERM, TERM and NO_COLOR")
        p.add_argument("--palette", default="grey", choices=PALETTES, help="colour map for grey images")
        p.add_argument("--scale", type=integer("an integer from 1 to 64", 1, 64), default=None,
                       help="pixel scale (default: fit the terminal)")
        p.add_argument("--width", type=integer("an integer from 1 to 10000", 1, 10_000), default=None,
                       help="columns to fit (default: the terminal's)")

    s = sub.add_parser("sample", help="draw a grid of samples (the default)")
    s.add_argument("--n", type=integer("an integer from 1 to 10000", 1, 10_000), default=20,
                   help="number of samples (default 20)")
    s.add_argument("--label", default=None, help="class to draw (index or name); default: every class in turn")
    s.add_argument("--seed", type=non_negative, default=None, help="same seed, same images (default: random)")
    s.add_argument("--checkpoint", default=None, help="a checkpoint from `gan train` (default: the shipped digits)")
    s.add_argument("--save", default=None, metavar="PATH.png", help="also write the grid as a PNG")
    s.add_argument("--save-array", default=None, metavar="PATH.npy", help="also write the raw samples (float, [0, 1])")
    look(s)

    t = sub.add_parser("train", help="train a GAN live, with a progress bar and the samples as they improve")
    t.add_argument("--data", default=None, help="digits (default), mnist:DIR or folder:DIR")
    t.add_argument("--size", type=positive, default=None, help="image size for mnist/folder data (e.g. 16, 28, 32)")
    t.add_argument("--epochs", type=integer("an integer from 0 to 100000", 0, 100_000), default=None,
                   help="total epochs (default 200 for digits, 20 otherwise)")
    t.add_argument("--batch-size", type=integer("an integer from 1 to 65536", 1, 65_536), default=64)
    t.add_argument("--lr", type=number("a learning rate between 0 and 1", 0.0, 1.0), default=4e-4,
                   help="generator learning rate (D uses twice this)")
    t.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N or mps (AIGC_CHAT_TORCH_DEVICE overrides it)")
    t.add_argument("--out", default=None, help="folder for the checkpoint (default: the data dir's gan/)")
    t.add_argument("--resume", default=None, metavar="PATH", help="continue training from a checkpoint")
    t.add_argument("--seed", type=non_negative, default=0)
    t.add_argument("--threads", type=integer("an integer from 1 to 512", 1, 512), default=1,
                   help="CPU threads (default 1: fastest for these small nets)")
    t.add_argument("--no-preview", action="store_true", help="do not draw the samples each epoch")
    look(t)

    e = sub.add_parser("eval", help="quality figures: Frechet distance with baselines, conditional accuracy")
    e.add_argument("--checkpoint", default=None, help="default: the shipped digits generator")
    e.add_argument("--data", default=None, help="data the checkpoint was trained on (default: from its header)")
    e.add_argument("--size", type=positive, default=None)
    e.add_argument("--seed", type=non_negative, default=0)
    e.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def _normalise(argv: Sequence[str]) -> list[str]:
    """Bare `gan` and `gan --opts` mean `gan sample ...`."""
    argv = list(argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "sample")
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point used by the main CLI for `aigc-chat gan ...` (argv excludes 'gan')."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        args = build_parser().parse_args(_normalise(argv))
        if args.command == "train":
            from aigc_chat.gan.cli_train import run_train

            return run_train(args)
        if args.command == "eval":
            from aigc_chat.gan.cli_eval import run_eval

            return run_eval(args)
        return run_sample(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gan sample | head`: the reader had enough; not our failure
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except AigcError as err:
        print(f"{PROG}: error: {one_line(str(err))}", file=sys.stderr)  # may quote a data file's name
        return err.exit_code
    except ImportError as err:
        print(f"{PROG}: error: missing dependency {err.name or err}: pip install 'aigc-chat[torch]'", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError, MemoryError) as err:
        print(f"{PROG}: error: {type(err).__name__}: {one_line(str(err))}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - a bug still ends as one line, never a traceback
        print(f"{PROG}: error: internal error ({type(err).__name__}: {one_line(str(err))})", file=sys.stderr)
        return 1


def _write(path: str, writer: Callable[[Path], object]) -> None:
    from pathlib import Path

    target = Path(path).expanduser()
    try:
        writer(target)
    except OSError as err:
        raise AigcError(f"cannot write {target}: {err.strerror or err}") from None


def _save_npy(path: Path, array: Any) -> None:
    """np.save, but atomic (aigc_chat.atomic_write): a full disk keeps an earlier file whole."""
    import io

    import numpy as np

    from aigc_chat.atomic_write import write_atomic

    buf = io.BytesIO()
    np.save(buf, array)
    write_atomic(path, buf.getvalue(), new_mode=None)


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from aigc_chat.gan.render import colourise, render_grid, resolve_mode, tile_grid, to_hwc
    from aigc_chat.gan.sampler import sample

    mode = resolve_mode(args.mode)
    if args.save and not args.save.lower().endswith(".png"):
        raise UsageError(f"--save writes PNG; the name must end in .png: {args.save}")
    if args.save_array and not args.save_array.lower().endswith(".npy"):
        raise UsageError(f"--save-array writes numpy .npy; the name must end in .npy: {args.save_array}")
    s = sample(args.checkpoint, n=args.n, seed=args.seed, label=args.label)
    cfg = s.checkpoint.config
    per_row = cfg.num_classes if cfg.conditional and args.label is None and cfg.num_classes <= 16 else None
    art = render_grid(s.images, mode=mode, palette=args.palette, scale=args.scale, width=args.width, per_row=per_row)
    out = sys.stdout
    out.write(art.to_ansi() + "\n")
    unlabelled = "labels in turn" if cfg.conditional else "unconditional"
    what = f"label {args.label}" if args.label is not None else unlabelled
    source = args.checkpoint or "shipped digits generator"
    out.write(f"{args.n} samples · {what} · seed {s.seed} · {source}\n")
    out.flush()
    if args.save:
        from aigc_chat.gan.png import write_png

        hwc = to_hwc(s.images)
        grid = tile_grid(hwc, "truecolor", args.scale or max(1, 64 // hwc.shape[2]), width=10**6, per_row=per_row or 10)
        _write(args.save, lambda p: write_png(p, colourise(grid, args.palette)))
    if args.save_array:
        _write(args.save_array, lambda p: _save_npy(p, s.images.astype(np.float32)))
    return 0
