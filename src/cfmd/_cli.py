"""The ``cfmd`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cfmd`` console script."""
    parser = argparse.ArgumentParser(prog="cfmd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job on the embedded synthetic cohort")
    demo.add_argument("--out", default="cfmd_demo_output", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(out=args.out)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
