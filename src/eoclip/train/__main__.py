"""`python -m eoclip.train`: pretraining without the command-line package, as torchrun runs it.

    torchrun --nproc_per_node=4 -m eoclip.train --config demo --store demo_out/world --out runs
    python -m eoclip.train --config demo --store demo_out/world --set lr=5e-4 --resume

Every `PretrainConfig` field is an option (`--batch-size 64` = `--set batch_size=64`; values
read as YAML); `eoclip pretrain` is the same with the CLI's help and messages.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

from eoclip.distributed import print0
from eoclip.errors import EoclipError, error_message
from eoclip.train.config import PretrainConfig, load_pretrain_config, parse_overrides
from eoclip.train.loop import pretrain


def parse_args(argv: list[str]) -> tuple[str, dict, bool]:
    """(config name or YAML path, overrides, resume) from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m eoclip.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", "-c", default="demo", help="packaged setting or YAML file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any field, e.g. model_overrides.depth=2 (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue <out>/<name>/last")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    for f in fields(PretrainConfig):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"field_{f.name}",
            metavar="VALUE",
            help=argparse.SUPPRESS,
        )
    args = parser.parse_args(argv)
    items = list(args.set) + [
        f"{k.removeprefix('field_')}={v}"
        for k, v in vars(args).items()
        if k.startswith("field_") and v is not None
    ]
    overrides = parse_overrides(items)
    if args.no_progress:
        overrides["progress"] = False
    return args.config, overrides, args.resume


def main(argv: list[str] | None = None) -> int:
    """Run one pretraining; a bad input ends with a one-line message and exit status 1.

    The same convention as the ``eoclip`` command line: ``EoclipError`` and ``OSError`` print
    ``error: <message>`` on stderr and return 1; argparse's usage errors exit with 2; anything
    else is a bug and keeps its traceback. Diagnostics are logged at INFO on stderr.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        name, overrides, resume = parse_args(sys.argv[1:] if argv is None else argv)
        result = pretrain(load_pretrain_config(name, overrides), resume=resume)
    except (EoclipError, OSError) as err:
        print(f"error: {error_message(err)}", file=sys.stderr)
        return 1
    best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
    print0(
        f"done: {result.step} steps, {result.epoch} epochs; best val loss {best}; "
        f"checkpoints in {result.run_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
