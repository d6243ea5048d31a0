"""`gan eval`: print the quality figures as a small table (or JSON)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from aigc_chat.gan.evaluate import evaluate
from aigc_chat.gan.sampler import open_checkpoint


def run_eval(args: argparse.Namespace) -> int:
    ck = open_checkpoint(args.checkpoint)
    console = Console(highlight=False)
    if not args.json:
        what = args.checkpoint or "the shipped digits generator"
        console.print(f"evaluating {what} on {args.data or ck.config.data} ...")
    rep = evaluate(ck, data_spec=args.data, size=args.size, seed=args.seed)
    if args.json:
        print(json.dumps(rep.to_json(), indent=2))
        return 0
    table = Table(title="GAN quality, judged by the reference classifier's features")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    table.add_row("FD generated", f"{rep.fd_generated:.2f}", f"{rep.fd_ratio:.2f}x the real-vs-real baseline")
    table.add_row("FD real vs real", f"{rep.fd_real:.2f}", "train vs held-out: a perfect generator")
    table.add_row("FD noise", f"{rep.fd_noise:.2f}", "uniform noise: no generator at all")
    if rep.conditional_accuracy is not None:
        table.add_row("conditional accuracy", f"{rep.conditional_accuracy:.1%}", "classified as the label asked for")
        worst = min(range(len(rep.per_class_accuracy)), key=rep.per_class_accuracy.__getitem__)
        table.add_row("weakest label", f"{rep.per_class_accuracy[worst]:.1%}", f"label {worst}")
    if rep.classifier_accuracy is not None:
        table.add_row("judge accuracy", f"{rep.classifier_accuracy:.1%}", "classifier on held-out real images")
    table.caption = (f"FD = Fréchet distance; {rep.n_generated} generated vs {rep.n_held_out} held-out images; "
                     f"data: {rep.data}")
    console.print(table)
    return 0
