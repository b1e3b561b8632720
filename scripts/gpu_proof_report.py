"""What scripts/gpu_proof.sh reads back from its own logs: the fastest training-loop variant of a
`pydqn bench --train` table (as `pydqn train` flags), the medians of a pytest-benchmark JSON file,
and a training run's frames per second and learning curve in numbers.

    python gpu_proof_report.py fastest BENCH_TRAIN_TXT   # prints: FRAMES_PER_S FLAG...
    python gpu_proof_report.py medians BENCH_JSON
    python gpu_proof_report.py run RUN_DIR
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

from pydqn.bench.train import CUDA_VARIANTS, VARIANTS, Variant

ALL_VARIANTS = {**VARIANTS, **CUDA_VARIANTS}


def flags_of(variant: Variant) -> list[str]:
    flags = ["--replay", variant.replay] if variant.replay != "cpp" else []
    flags += ["--async"] if variant.asynchronous else []
    flags += ["--cuda-graph"] if variant.cuda_graph else []
    return flags + (["--prioritized"] if variant.prioritized else [])


def fastest(table: Path) -> str:
    """The fastest variant but the pure-Python buffer's (the tests' oracle, not a configuration)."""
    measured = {}
    for line in table.read_text().splitlines():
        for name, variant in ALL_VARIANTS.items():
            if line.startswith(name) and variant.replay != "python":
                measured[name] = float(line[len(name) :].split()[0].replace(",", ""))
    if not measured:
        raise SystemExit(f"{table}: no variant's frames/s found")
    name = max(measured, key=measured.__getitem__)
    return " ".join([f"{measured[name]:.0f}", *flags_of(ALL_VARIANTS[name])])


def medians(path: Path) -> str:
    """Each benchmark's median, then what the priority feedback adds to one update."""
    lines = [f"{'benchmark':<64}{'median':>14}{'rounds':>8}"]
    feedback: dict[str, float] = {}
    for bench in json.loads(path.read_text())["benchmarks"]:
        name, median = bench["fullname"].split("::")[-1], bench["stats"]["median"]
        lines.append(f"{name:<64}{median * 1e6:>11,.1f} us{bench['stats']['rounds']:>8}")
        if "updates_per_round" in bench["extra_info"]:
            feedback[name.split("-")[-1].rstrip("]")] = median / bench["extra_info"]["updates_per_round"]
    if len(feedback) == 2:
        added = feedback["with feedback"] - feedback["without feedback"]
        lines.append(
            f"priority feedback: {added * 1e6:,.1f} us per update "
            f"({added / feedback['without feedback']:+.1%} on {feedback['without feedback'] * 1e6:,.1f} us)"
        )
    return "\n".join(lines)


def run_summary(run_dir: Path) -> str:
    with open(run_dir / "metrics.csv", newline="") as file:
        metrics = list(csv.DictReader(file))
    with open(run_dir / "episodes.csv", newline="") as file:
        returns = [float(row["return"]) for row in csv.DictReader(file)]
    learning = [float(row["fps"]) for row in metrics if int(row["updates"]) > 0]
    if metrics and learning:
        last = metrics[-1]
        lines = [
            f"metrics.csv to step {int(last['step']):,} ({int(last['updates']):,} updates, "
            f"{float(last['wall_time']):,.0f} s): median frames/s while learning "
            f"{statistics.median(learning):,.0f}"
        ]
    else:
        lines = ["metrics.csv: no row while learning (the run ended before its first log interval)"]
    lines.append(f"episodes: {len(returns)}")
    if returns:
        head, tail = returns[:10], returns[-10:]
        lines.append(
            f"return: first {len(head)} episodes' mean {statistics.mean(head):.2f}, last {len(tail)}' "
            f"mean {statistics.mean(tail):.2f}, best {max(returns):.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    command, path = argv[1], Path(argv[2])
    print({"fastest": fastest, "medians": medians, "run": run_summary}[command](path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
