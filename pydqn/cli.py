"""The `pydqn` command line (also `python -m pydqn`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig / LearnerConfig field (--learning-rate, --double/--no-double, ...),
    generated from the dataclasses so the CLI cannot drift from the configuration."""
    from pydqn.agent.learner import LearnerConfig
    from pydqn.training.config import TrainConfig

    group = parser.add_argument_group("settings (override the preset and --config)")
    for config_class, prefix in ((TrainConfig, ""), (LearnerConfig, "learner.")):
        hints = typing.get_type_hints(config_class)
        for field in dataclasses.fields(config_class):
            if dataclasses.is_dataclass(hints[field.name]):
                continue
            flag = "--" + field.name.replace("_", "-")
            kwargs: dict[str, Any] = {"dest": "set:" + prefix + field.name, "default": None}
            hint = hints[field.name]
            choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
            if hint is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif choices:
                kwargs["choices"] = choices
            elif typing.get_origin(hint) is tuple:
                kwargs.update(type=int, nargs="+")
            else:
                number = next((t for t in (int, float) if t in (hint, *typing.get_args(hint))), str)
                # Range rules (e.g. batch_size >= 1, eval_interval 0 = never) are the config's.
                kwargs["type"] = non_negative_int if number is int else number
            group.add_argument(flag, **kwargs)


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("set:") and value is not None:
            *tables, name = key[4:].split(".")
            target = overrides
            for table in tables:
                target = target.setdefault(table, {})
            target[name] = value
    return overrides


def build_parser() -> argparse.ArgumentParser:
    from pydqn.training.config import PresetName

    parser = argparse.ArgumentParser(prog="pydqn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a DQN agent",
        description="Train DQN on an env. Settings: defaults < --preset < --config file < flags.",
    )
    train.add_argument(
        "--env",
        dest="set:env_id",
        default=None,
        metavar="ID",
        help="ALE/<Game>-v5 or a classic-control id such as CartPole-v1",
    )
    train.add_argument(
        "--preset",
        nargs="+",
        choices=typing.get_args(PresetName),
        metavar="NAME",
        help="known-good settings: atari (the default), nature2015, cartpole, "
        "and rainbow-lite (Double + dueling + 3-step + prioritized), which "
        "stacks on the others: --preset cartpole rainbow-lite",
    )
    train.add_argument("--config", type=Path, metavar="FILE", help="a TOML file of settings")
    train.add_argument(
        "--run-dir",
        type=Path,
        metavar="DIR",
        help="where config, logs and checkpoints go (default: runs/<env>-<seed>)",
    )
    train.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
    )
    train.add_argument(
        "--async",
        dest="set:asynchronous",
        action="store_true",
        default=None,
        help="act and learn on two threads (same as --asynchronous)",
    )
    add_setting_flags(train)
    evaluate = commands.add_parser(
        "evaluate",
        help="play greedy episodes with a trained agent and report raw game scores",
        description="Play episodes with a checkpoint (for a run directory: its best.pt from the "
        "periodic evaluations when it has one, else its last checkpoint.pt).",
    )
    evaluate.add_argument("path", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    evaluate.add_argument("--episodes", type=positive_int, default=10)
    evaluate.add_argument(
        "--epsilon",
        type=float,
        default=None,
        help="exploration while evaluating (default: the run's eval_epsilon)",
    )
    evaluate.add_argument("--seed", type=int, default=12345)
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default: cpu)")
    evaluate.add_argument(
        "--video",
        type=Path,
        metavar="FILE",
        help="also write the episodes as a video, e.g. play.mp4 (needs the video "
        "extra: pip install 'pydqn[video]'); episodes are then played one by one",
    )
    plot = commands.add_parser(
        "plot",
        help="draw a run's learning curve as a PNG (needs matplotlib)",
        description="Episode returns and their 100-episode mean against env steps and wall time, "
        "with the periodic evaluations.",
    )
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    plot.add_argument("--out", type=Path, metavar="PNG", help="default: RUN_DIR/learning_curve.png")
    bench = commands.add_parser(
        "bench",
        help="compare the C++ replay buffer with the pure-Python one (and numpy)",
        description="Measure add and sample of ReplayBuffer against PyReplayBuffer at Atari "
        "shapes, with a plain numpy gather of the same bytes as the hardware reference. "
        "Needs about 8 GB of memory at the default capacity (the Python buffer keeps "
        "full observation copies). With --train: run the training loop with each "
        "buffer instead and report frames/s, updates/s and where the time goes. With "
        "--prioritized: prioritized sample and update_priorities against the Python "
        "segment trees and against uniform sampling. With --sample-device: batches "
        "delivered on a device by each buffer.",
    )
    bench.add_argument(
        "--capacity",
        type=positive_int,
        default=None,
        help="transitions per buffer (default: 100,000; 1,000,000 with --prioritized)",
    )
    bench.add_argument(
        "--repeats",
        type=positive_int,
        default=300,
        help="timed calls per operation; the median is reported (default: 300)",
    )
    bench.add_argument(
        "--prioritized",
        action="store_true",
        help="benchmark prioritized replay (small observations, about 2 GB at 1M)",
    )
    bench.add_argument(
        "--sample-device",
        metavar="DEVICE",
        help="benchmark delivering batches on DEVICE (cuda, or cpu for the CUDA "
        "path's CPU twin): the device-resident buffer against the host one plus "
        "a pinned copy and the Python one plus .to(); default capacity 1,000,000 "
        "(the Python buffer then needs about 60 GB of host memory)",
    )
    loop = bench.add_argument_group("--train: the training loop")
    loop.add_argument("--train", action="store_true", help="benchmark the training loop")
    loop.add_argument("--env", default="ALE/Pong-v5", metavar="ID", help="default: ALE/Pong-v5")
    loop.add_argument(
        "--steps", type=positive_int, default=6_000, help="env steps per variant (default: 6,000)"
    )
    loop.add_argument(
        "--learning-starts",
        type=positive_int,
        default=2_000,
        help="env steps before the first update; timing starts there (default: 2,000)",
    )
    loop.add_argument("--num-envs", type=positive_int, default=8, help="default: 8")
    loop.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    loop.add_argument(
        "--torch-threads",
        type=non_negative_int,
        default=1,
        help="torch CPU threads, 0 for torch's default (default: 1; more threads "
        "fight the env threads for the cores of a small machine)",
    )
    return parser


def run_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pydqn.device import resolve_device
    from pydqn.runs import CheckpointError, RunLayout, default_run_dir
    from pydqn.training.config import build_config, to_toml
    from pydqn.training.resume import read_resume_point
    from pydqn.training.run import train

    if args.resume is not None:
        point = usage_error_on(parser, CheckpointError, lambda: read_resume_point(args.resume))
        usage_error_on(parser, ValueError, lambda: resolve_device(point.config.device))
        result = train(None, args.resume, resume=point)
    else:
        try:
            config = build_config(args.preset or ["atari"], setting_overrides(args), args.config)
            resolve_device(config.device)  # a device this machine lacks is a setting's error
        except (ValueError, OSError) as error:
            parser.error(str(error))
        run_dir = args.run_dir or default_run_dir(config.env_id, config.seed)
        print(f"# pydqn train: run directory {run_dir}\n{to_toml(config)}", flush=True)
        result = train(config, run_dir)
    run_dir = args.resume if args.resume is not None else run_dir
    print(
        f"trained {result.steps:,} env steps, {result.updates:,} updates, {result.episodes:,} "
        f"episodes in {result.wall_time:.0f} s; mean return of the last 100 training episodes "
        f"{result.mean_return_100:.1f}" + (" (interrupted; checkpoint written)" if result.interrupted else "")
    )
    timed = sum(result.phase_seconds.values()) or 1.0
    print(
        "time spent: "
        + ", ".join(
            f"{phase} {seconds / timed:.0%}" for phase, seconds in result.phase_seconds.items() if seconds
        )
    )
    if result.best_eval > float("-inf"):
        print(
            f"best periodic evaluation: mean return {result.best_eval:.1f}, kept as "
            f"{RunLayout(run_dir).best}; `pydqn evaluate {run_dir}` plays it"
        )
    return 130 if result.interrupted else 0


def usage_error_on(
    parser: argparse.ArgumentParser, errors: type[Exception] | tuple[type[Exception], ...], call
):
    """``call()``, turning the expected errors into a usage error (exit 2), not a traceback."""
    try:
        return call()
    except errors as error:
        parser.error(str(error))


def run_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pydqn.device import resolve_device
    from pydqn.runs.checkpoint import CheckpointError
    from pydqn.training.evaluate import checkpoint_to_evaluate, evaluate

    usage_error_on(parser, ValueError, lambda: resolve_device(args.device, name="--device"))
    returns = usage_error_on(
        parser,
        (CheckpointError, ImportError),
        lambda: evaluate(args.path, args.episodes, args.epsilon, args.seed, args.device, args.video),
    )
    print(
        f"{checkpoint_to_evaluate(args.path)}: {len(returns)} episodes: mean {returns.mean():.2f}, "
        f"std {returns.std():.2f}, "
        f"min {returns.min():.2f}, max {returns.max():.2f}"
    )
    if args.video is not None:
        print(f"video: {args.video}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return run_train(args, parser)
    if args.command == "evaluate":
        return run_evaluate(args, parser)
    if args.command == "plot":
        from pydqn.report.plot import plot_run

        print(usage_error_on(parser, ValueError, lambda: plot_run(args.run_dir, args.out)))
        return 0
    if args.command == "bench" and args.train:
        import torch

        from pydqn.bench.train import format_train_table, run_train_bench

        config, rows = usage_error_on(
            parser,
            ValueError,
            lambda: run_train_bench(
                args.env, args.steps, args.learning_starts, args.num_envs, args.device, args.torch_threads
            ),
        )
        print(format_train_table(config, rows, torch.get_num_threads()))
    elif args.command == "bench" and args.sample_device:
        from pydqn.bench.device import format_device_table, run_device_bench

        capacity = args.capacity or 1_000_000
        rows = usage_error_on(
            parser, ValueError, lambda: run_device_bench(args.sample_device, capacity, args.repeats)
        )
        print(format_device_table(rows, args.sample_device, capacity))
    elif args.command == "bench" and args.prioritized:
        from pydqn.bench.prioritized import format_prioritized_table, run_prioritized_bench

        capacity = args.capacity or 1_000_000
        print(format_prioritized_table(run_prioritized_bench(capacity, args.repeats), capacity))
    elif args.command == "bench":
        from pydqn.bench.replay import format_table, run_replay_bench

        capacity = args.capacity or 100_000
        print(format_table(run_replay_bench(capacity, args.repeats), capacity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
