"""The `pydqn` command line (also `python -m pydqn`)."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pydqn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = commands.add_parser(
        "bench", help="compare the C++ replay buffer with the pure-Python one (and numpy)",
        description="Measure add and sample of ReplayBuffer against PyReplayBuffer at Atari "
                    "shapes, with a plain numpy gather of the same bytes as the hardware reference. "
                    "Needs about 8 GB of memory at the default capacity (the Python buffer keeps "
                    "full observation copies).")
    bench.add_argument("--capacity", type=positive_int, default=100_000,
                       help="transitions per buffer (default: 100,000)")
    bench.add_argument("--repeats", type=positive_int, default=300,
                       help="timed calls per operation; the median is reported (default: 300)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from pydqn.bench_replay import format_table, run_replay_bench

        print(format_table(run_replay_bench(args.capacity, args.repeats), args.capacity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
