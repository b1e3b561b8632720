"""The `pydqn` command line (also `python -m pydqn`)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
import typing
from pathlib import Path
from typing import Any


class Parser(argparse.ArgumentParser):
    """argparse, with an error as one line and a hint instead of the whole usage."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the options)\n")


# Digits, optionally grouped by _ (as Python writes them) or by thousands commas (10,000,000).
INTEGER = re.compile(r"[+-]?(\d+(_\d+)*|\d{1,3}(,\d{3})+)")


def _integer(text: str, minimum: int, what: str) -> int:
    if not INTEGER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    value = int(text.strip().replace(",", ""))
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


METAVARS = {int: "N", float: "X"}


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig / LearnerConfig field (--learning-rate, --double/--no-double, ...),
    grouped by concern, with the field's doc and default as help: generated from the dataclasses
    so that the CLI cannot drift from the configuration."""
    from pydqn.agent.learner import LearnerConfig
    from pydqn.settings import setting_fields
    from pydqn.training.config import GROUPS, TrainConfig

    groups = {name: parser.add_argument_group(f"{name} settings") for name in GROUPS}
    defaults = TrainConfig()
    for config_class, prefix, values in (
        (TrainConfig, "", defaults),
        (LearnerConfig, "learner.", defaults.learner),
    ):
        for field, hint in setting_fields(config_class):
            if dataclasses.is_dataclass(hint):
                continue
            flag = "--" + (field.metadata["flag"] or field.name.replace("_", "-"))
            kwargs: dict[str, Any] = {"dest": "set:" + prefix + field.name, "default": None}
            choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
            if hint is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif choices:
                kwargs.update(choices=choices, metavar="{" + ",".join(choices) + "}")
            elif typing.get_origin(hint) is tuple:
                kwargs.update(type=strict_int, nargs="+", metavar="N")
            else:
                number = next((t for t in (int, float) if t in (hint, *typing.get_args(hint))), str)
                # Range rules (batch_size >= 1, eval_interval 0 = never, ...) are the config's.
                metavar = METAVARS.get(number) or flag[2:].upper()
                kwargs.update(type={int: strict_int, float: float}.get(number, str), metavar=metavar)
            resumable = "; resumable" if field.metadata["resumable"] else ""
            default = _shown(getattr(values, field.name))
            kwargs["help"] = f"{field.metadata['doc']} (default: {default}{resumable})"
            groups[field.metadata["group"]].add_argument(flag, **kwargs)


def _shown(value: Any) -> str:
    """A default as --help shows it (argparse formats help with %: a literal one is doubled)."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value).replace("%", "%%")


def strict_int(text: str) -> int:
    """An integer flag's value: digits (with _ or , between them), never a float that rounds."""
    return _integer(text, -(2**63), "an integer")


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, as nested tables for `build_config`."""
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

    parser = Parser(prog="pydqn", description=__doc__)
    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        usage="%(prog)s [--preset NAME ...] [--config FILE] [--run-dir DIR [--overwrite] | --resume RUN_DIR] "
        "[SETTING FLAGS ...]",
        help="train a DQN agent",
        description="Train DQN on an env. Settings: defaults (the atari preset's, shown below) < "
        "--preset < --config file < flags. A new run goes to a folder that holds no run; "
        "--resume continues one, and may change its resumable settings "
        "(--total-steps extends it): those marked resumable below.",
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
        help="where config, logs and checkpoints go; it must hold no run (default: runs/<env>-<seed>, "
        "or -2, -3, ... after it when that holds one)",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="delete the run files in --run-dir first, if it holds a run"
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint; flags (and --config) given with "
        "it change its resumable settings, e.g. --total-steps to train longer",
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
        "delivered on a device by each buffer. With --sb3: pydqn's Stable-Baselines3 drop-in "
        "against SB3's own ReplayBuffer, then SB3's DQN.learn with each. With --actors: the "
        "Ape-X learner's ingest ceiling and the actors' frames/s.",
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
    bench.add_argument(
        "--python-capacity",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --sample-device: the Python buffer's capacity alone (default: --capacity; it "
        "keeps ~56 KB per transition and fills at ~8,000 per second on 2 cores)",
    )
    bench.add_argument(
        "--sb3",
        action="store_true",
        help="benchmark pydqn.integrations.sb3.ReplayBuffer against SB3's ReplayBuffer (plain and "
        "optimize_memory_usage; about 9 GB at the default capacity), then SB3's DQN.learn on --env "
        "with each for --steps env steps after --learning-starts, --num-envs envs",
    )
    bench.add_argument(
        "--actors",
        type=positive_int,
        nargs="*",
        metavar="N",
        help="benchmark Ape-X: the learner's ingest ceiling from actors' chunks at Atari shapes "
        "(bytes per transition on the wire against (obs, next_obs) stacks), then --env's frames/s "
        "with N actors (default: 1 2) of --envs-per-actor envs, --steps env steps each, no learning, "
        "and how many such actors the ceiling feeds (needs the ray extra)",
    )
    bench.add_argument(
        "--envs-per-actor", type=positive_int, default=4, help="with --actors: envs per actor (default: 4)"
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
        help="torch CPU threads, 0: one per usable core, as `pydqn train` picks (default: 1, so that "
        "its figures compare with the README's earlier ones)",
    )
    for command in (train, evaluate, plot, bench):
        command.add_argument("--debug", action="store_true", help="on an error, show Python's traceback")
    parser.set_defaults(subparsers=commands.choices)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, with an unknown flag reported by its command (with the closest
    known flag), not by the top-level parser."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = args.subparsers[args.command]
        known = [flag for action in command._actions for flag in action.option_strings]
        close = difflib.get_close_matches(unknown[0].split("=")[0], known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


def version_line() -> str:
    import importlib.metadata

    import torch

    python = sys.version.split()[0]
    return f"pydqn {importlib.metadata.version('pydqn')} (torch {torch.__version__}, Python {python})"


def run_train(args: argparse.Namespace) -> int:
    from pydqn.distributed.run import make_trainer
    from pydqn.runs import RunLayout
    from pydqn.training.config import build_config, resumed_config, to_toml
    from pydqn.training.resume import read_resume_point

    overrides = setting_overrides(args)
    if args.resume is not None:
        for flag, given in (
            ("--preset", args.preset),
            ("--run-dir", args.run_dir),
            ("--overwrite", args.overwrite),
        ):
            if given:
                raise UsageError(f"{flag}: a resumed run keeps its folder and settings; drop {flag}")
        point = read_resume_point(args.resume)
        # config.toml shows the run's settings: an edit of a resumable one there counts too.
        saved = RunLayout(args.resume).config
        requested = point.config
        if saved.is_file():
            edited = build_config(toml_path=saved, base=point.config)
            requested = resumed_config(point.config, edited, source=f"{saved}: ")
        requested = build_config(overrides=overrides, toml_path=args.config, base=requested)
        trainer = make_trainer(requested, args.resume, resume=point)
        header = f"resuming {trainer.run_dir} at step {trainer.step:,}"
    else:
        config = build_config(args.preset or ["atari"], overrides, args.config)
        trainer = make_trainer(config, args.run_dir, overwrite=args.overwrite)
        header = f"run directory {trainer.run_dir}"
    print(f"# pydqn train: {header}\n{to_toml(trainer.config)}", flush=True)
    since = (trainer.step, trainer.learner.updates, trainer.episodes)
    try:
        result = trainer.run()
    finally:
        trainer.close()
    print(summary(result, since))
    return 130 if result.interrupted else 0


def summary(result: Any, since: tuple[int, int, int] = (0, 0, 0)) -> str:
    """The lines a finished `pydqn train` prints: what this call did (from the step, updates and
    episodes of ``since``: a resumed run's), where the time went, the best policy."""
    from pydqn.training.progress import plural

    steps, updates, episodes = (
        now - before
        for now, before in zip((result.steps, result.updates, result.episodes), since, strict=True)
    )
    ended = result.mean_return_100 == result.mean_return_100  # NaN: no episode ended in this call
    mean = f"{result.mean_return_100:.1f}" if ended else "none (no episode ended)"
    resumed = f" (from step {since[0]:,} to {result.steps:,})" if since[0] else ""
    lines = [
        f"trained {plural(steps, 'env step')}{resumed}, {plural(updates, 'update')}, "
        f"{plural(episodes, 'episode')} in {result.wall_time:.0f} s; mean return of the last 100 "
        f"training episodes {mean}" + (" (interrupted; checkpoint written)" if result.interrupted else "")
    ]
    timed = sum(result.phase_seconds.values()) or 1.0
    lines.append(
        "time spent: "
        + ", ".join(
            f"{phase} {seconds / timed:.0%}" for phase, seconds in result.phase_seconds.items() if seconds
        )
    )
    if result.best_eval > float("-inf"):
        from pydqn.runs import RunLayout

        lines.append(
            f"best periodic evaluation: mean return {result.best_eval:.1f}, kept as "
            f"{RunLayout(result.run_dir).best}; `pydqn evaluate {result.run_dir}` plays it"
        )
    return "\n".join(lines)


class UsageError(ValueError):
    """A command line whose options do not go together."""


def run_evaluate(args: argparse.Namespace) -> int:
    from pydqn.training.evaluate import checkpoint_to_evaluate, evaluate

    returns = evaluate(args.path, args.episodes, args.epsilon, args.seed, args.device, args.video)
    print(
        f"{checkpoint_to_evaluate(args.path)}: {len(returns)} episodes: mean {returns.mean():.2f}, "
        f"std {returns.std():.2f}, min {returns.min():.2f}, max {returns.max():.2f}"
    )
    if args.video is not None:
        print(f"video: {args.video}")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from pydqn.report.plot import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    if args.python_capacity and not args.sample_device:
        raise ValueError("--python-capacity: sizes the Python buffer of --sample-device, which is not given")
    if args.train:
        import torch

        from pydqn.bench.train import format_train_table, run_train_bench

        config, rows = run_train_bench(
            args.env, args.steps, args.learning_starts, args.num_envs, args.device, args.torch_threads
        )
        print(format_train_table(config, rows, torch.get_num_threads()))
    elif args.actors is not None:
        from pydqn.bench.actors import format_ingest_table, run_ingest_bench
        from pydqn.bench.fleet import format_fleet_table, run_fleet_bench

        ingest = run_ingest_bench(capacity=args.capacity or 100_000)
        print(format_ingest_table(ingest), flush=True)
        fleet = run_fleet_bench(args.env, args.actors or [1, 2], args.steps, args.envs_per_actor)
        print(format_fleet_table(args.env, fleet, ingest.transitions_per_s))
    elif args.sb3:
        from pydqn.bench.sb3 import format_sb3_table, run_learn_bench, run_sb3_bench

        capacity = args.capacity or 100_000
        measured = run_sb3_bench(capacity, args.repeats)
        measured.append(run_learn_bench(args.env, args.steps, args.learning_starts, args.num_envs))
        print(format_sb3_table(measured, capacity))
    elif args.sample_device:
        from pydqn.bench.device import format_device_table, run_device_bench

        capacity = args.capacity or 1_000_000
        delivered = run_device_bench(args.sample_device, capacity, args.repeats, args.python_capacity)
        print(format_device_table(delivered, args.sample_device, capacity, args.python_capacity))
    elif args.prioritized:
        from pydqn.bench.prioritized import format_prioritized_table, run_prioritized_bench

        capacity = args.capacity or 1_000_000
        print(format_prioritized_table(run_prioritized_bench(capacity, args.repeats), capacity))
    else:
        from pydqn.bench.replay import format_table, run_replay_bench

        capacity = args.capacity or 100_000
        print(format_table(run_replay_bench(capacity, args.repeats), capacity))
    return 0


COMMANDS = {"train": run_train, "evaluate": run_evaluate, "plot": run_plot, "bench": run_bench}


def main(argv: list[str] | None = None) -> int:
    """Run a `pydqn` command line. An error in what was asked (a setting, a file, a device) is one
    message on stderr and exit status 2, one of the machine (a full disk, a missing extra) 1; with
    --debug it is raised instead, traceback and all."""
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, ImportError, MemoryError) as error:
        if args.debug:
            raise
        print(f"pydqn {args.command}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    except KeyboardInterrupt:
        print(f"pydqn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
