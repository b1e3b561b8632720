"""`pydqn bench --actors`, the learner's side: how many transitions per second one learner process
can take in from Ape-X actors' experience chunks, and so how many actors it can keep up with.

Each actor steps ``envs_per_actor`` Atari-shaped env streams ((4, 84, 84) uint8 stacks of random
frames; episodes end now and then, terminated or truncated) and writes every vector step into a
`ChunkWriter`, as an actor does. Its chunks are pickled (protocol 5, as Ray serializes numpy
arrays; Ray's out-of-band buffers carry the same bytes) before anything is timed. What is timed
is the learner's work per chunk: unpickle it, rebuild its ``add`` calls with the actor's
`ChunkReader`, and add them to a `pydqn.ReplayBuffer` holding every actor's streams. The same
chunks' rows are also pickled as whole (obs, next_obs) stacks, the wire a chunk replaces, to
compare the bytes.
"""

from __future__ import annotations

import pickle
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pydqn.bench.replay import FRAME_SHAPE, FRAME_STACK, OBS_SHAPE
from pydqn.distributed.chunks import ChunkReader, ChunkWriter, ExperienceChunk
from pydqn.replay.buffer import ReplayBuffer

STAGES = ("unpickle", "rebuild", "add")  # the learner's work per chunk, in order


@dataclass
class ActorStreams:
    """One actor's vector env: ``num_envs`` streams of (4, 84, 84) uint8 stacks, each step adding a
    random frame from a shared pool; a new episode's stack is its first frame repeated
    (gymnasium's frame stacking). Each step ends an episode with ``end_probability``, a quarter
    of them by truncation (a time limit), the rest by termination; the next step starts the
    next episode (same-step autoreset)."""

    num_envs: int
    pool: np.ndarray  # (frames, 84, 84) uint8
    seed: int = 0
    end_probability: float = 1 / 200
    rng: np.random.Generator = field(init=False)
    stacks: np.ndarray = field(init=False)  # (num_envs, 4, 84, 84): each stream's current obs

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.stacks = self._first_stacks(self.num_envs)

    def step(self) -> dict[str, np.ndarray]:
        """The next vector step, as `ChunkWriter.add` (and `pydqn.ReplayBuffer.add`) take it."""
        obs = self.stacks
        next_obs = np.concatenate([obs[:, 1:], self._frames(self.num_envs)[:, None]], axis=1)
        ended = self.rng.random(self.num_envs) < self.end_probability
        truncated = ended & (self.rng.random(self.num_envs) < 0.25)
        self.stacks = next_obs.copy()
        self.stacks[ended] = self._first_stacks(int(ended.sum()))
        return dict(
            obs=obs,
            action=self.rng.integers(0, 6, self.num_envs),
            reward=self.rng.choice(np.array([-1.0, 0.0, 1.0], dtype=np.float32), self.num_envs),
            next_obs=next_obs,
            terminated=ended & ~truncated,
            truncated=truncated,
        )

    def _frames(self, count: int) -> np.ndarray:
        return self.pool[self.rng.integers(0, len(self.pool), count)]

    def _first_stacks(self, count: int) -> np.ndarray:
        return np.repeat(self._frames(count)[:, None], FRAME_STACK, axis=1)


@dataclass(frozen=True)
class ActorChunks:
    """One actor's chunks on the wire, in the order it sent them, with what they carry."""

    actor: int
    payloads: list[bytes]  # pickle.dumps(chunk, protocol=5), one per chunk
    rows: int  # transitions, all chunks together
    stack_pair_bytes: int  # the same rows pickled as whole (obs, next_obs) stacks


def stack_pair_payload(calls: list[dict[str, np.ndarray]], env_ids: np.ndarray) -> bytes:
    """The calls' rows as the wire without frame sharing would carry them: every row's ``obs``
    and ``next_obs`` whole, with the per-row fields in the chunk's dtypes, pickled alike."""
    columns: dict[str, Any] = {
        name: np.concatenate([call[name] for call in calls])
        for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated")
    }
    columns["env_ids"] = np.tile(env_ids.astype(np.int32), len(calls))
    columns["steps"] = np.full(len(calls), len(env_ids), dtype=np.int32)
    columns["action"] = columns["action"].astype(np.int64)
    return pickle.dumps(columns, protocol=5)


def make_actor_chunks(
    actor: int, envs_per_actor: int, chunk_steps: int, chunks: int, pool: np.ndarray, seed: int
) -> ActorChunks:
    """``chunks`` chunks of ``chunk_steps`` vector steps each, written as an actor writes them."""
    streams = ActorStreams(envs_per_actor, pool, seed=seed + 10_007 * (actor + 1))
    writer = ChunkWriter(envs_per_actor, OBS_SHAPE, np.uint8, frame_stack=FRAME_STACK)
    payloads, rows, stack_pair_bytes = [], 0, 0
    for _ in range(chunks):
        calls = [streams.step() for _ in range(chunk_steps)]
        for call in calls:
            writer.add(**call)
        chunk = writer.take()
        payloads.append(pickle.dumps(chunk, protocol=5))
        rows += chunk.rows
        stack_pair_bytes += len(stack_pair_payload(calls, np.arange(envs_per_actor)))
    return ActorChunks(actor, payloads, rows, stack_pair_bytes)


def arrival_order(fleet: list[ActorChunks]) -> list[tuple[int, bytes]]:
    """Every chunk as (actor, payload), in the order the learner gets them when the actors run at
    one pace: each actor's first chunk, then each one's second, and so on."""
    by_round = zip(*([(a.actor, payload) for payload in a.payloads] for a in fleet), strict=True)
    return [sent for one_round in by_round for sent in one_round]


class LearnerIngest:
    """The learner's ingest: the buffer of all actors' streams and one `ChunkReader` per actor."""

    def __init__(self, capacity: int, actors: int, envs_per_actor: int, seed: int = 0) -> None:
        self.envs_per_actor = envs_per_actor
        self.buffer = ReplayBuffer(
            capacity,
            OBS_SHAPE,
            obs_dtype=torch.uint8,
            frame_stack=FRAME_STACK,
            num_envs=actors * envs_per_actor,
            seed=seed,
        )
        self.readers = [ChunkReader(FRAME_STACK) for _ in range(actors)]

    def restart_streams(self) -> None:
        """Forget every open episode, so that the same chunks, whose first rows start episodes, can
        be ingested again (the buffer refuses a row that does not continue its stream)."""
        self.buffer.end_episodes()
        self.readers = [ChunkReader(FRAME_STACK) for _ in self.readers]

    def calls(self, actor: int, chunk: ExperienceChunk) -> Iterator[dict[str, Any]]:
        return self.readers[actor].replay(chunk, env_offset=actor * self.envs_per_actor)

    def ingest(self, arrivals: list[tuple[int, bytes]]) -> int:
        """Unpickle, rebuild and add every chunk; the transitions added."""
        rows = 0
        for actor, payload in arrivals:
            chunk = pickle.loads(payload)
            for call in self.calls(actor, chunk):
                self.buffer.add(**call)
            rows += chunk.rows
        return rows

    def ingest_by_stage(self, arrivals: list[tuple[int, bytes]]) -> dict[str, float]:
        """`ingest` with each stage's seconds taken apart (the rebuilt calls are all made before
        the first add, which the plain ingest interleaves)."""
        seconds = dict.fromkeys(STAGES, 0.0)
        for actor, payload in arrivals:
            started = time.perf_counter()
            chunk = pickle.loads(payload)
            unpickled = time.perf_counter()
            calls = list(self.calls(actor, chunk))
            rebuilt = time.perf_counter()
            for call in calls:
                self.buffer.add(**call)
            added = time.perf_counter()
            took = (unpickled - started, rebuilt - unpickled, added - rebuilt)
            for stage, stage_seconds in zip(STAGES, took, strict=True):
                seconds[stage] += stage_seconds
        return seconds


def actors_fed(ceiling_transitions_per_s: float, per_actor_transitions_per_s: float) -> float:
    """How many actors, each producing ``per_actor_transitions_per_s``, one learner ingesting at
    ``ceiling_transitions_per_s`` keeps up with (before it spends any time learning)."""
    if per_actor_transitions_per_s <= 0:
        return float("inf")
    return ceiling_transitions_per_s / per_actor_transitions_per_s


@dataclass(frozen=True)
class IngestFigures:
    """What `run_ingest_bench` measured. Times are medians over ``repeats`` ingests of one batch:
    ``chunks`` chunks from each of ``actors`` actors, ``transitions_per_batch`` rows in all."""

    capacity: int
    actors: int
    envs_per_actor: int
    chunk_steps: int
    chunks: int
    repeats: int
    transitions_per_batch: int
    transitions_per_s: float  # the ingest ceiling: unpickle + rebuild + add
    wire_bytes_per_transition: float  # pickled chunks
    stack_pair_bytes_per_transition: float  # the same rows pickled as whole (obs, next_obs) stacks
    stage_us_per_transition: dict[str, float]  # by STAGES, medians of a separately timed ingest


def run_ingest_bench(
    capacity: int = 100_000,
    actors: int = 4,
    envs_per_actor: int = 4,
    chunk_steps: int = 50,
    chunks: int = 8,
    seed: int = 0,
    repeats: int = 15,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> IngestFigures:
    """Make and pickle ``chunks`` chunks per actor (not timed), fill the learner's buffer to
    ``capacity`` with them (not timed: a full buffer overwrites, as in a run), then time
    ``repeats`` ingests of the whole batch, plus as many taken apart by stage."""
    torch.set_num_threads(1)
    pool = np.random.default_rng(seed).integers(0, 256, (1021, *FRAME_SHAPE), dtype=np.uint8)
    started = time.perf_counter()
    fleet = [make_actor_chunks(a, envs_per_actor, chunk_steps, chunks, pool, seed) for a in range(actors)]
    arrivals = arrival_order(fleet)
    rows = sum(a.rows for a in fleet)
    wire_bytes = sum(len(payload) for _, payload in arrivals)
    log(
        f"made {len(arrivals)} chunks ({rows:,} transitions, {wire_bytes / 2**20:.1f} MiB pickled) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    learner = LearnerIngest(capacity, actors, envs_per_actor, seed)
    while len(learner.buffer) < capacity:
        learner.restart_streams()
        learner.ingest(arrivals)
    seconds, stages = [], []
    for _ in range(repeats):
        learner.restart_streams()
        started = time.perf_counter()
        learner.ingest(arrivals)
        seconds.append(time.perf_counter() - started)
        learner.restart_streams()
        stages.append(learner.ingest_by_stage(arrivals))
    return IngestFigures(
        capacity=capacity,
        actors=actors,
        envs_per_actor=envs_per_actor,
        chunk_steps=chunk_steps,
        chunks=chunks,
        repeats=repeats,
        transitions_per_batch=rows,
        transitions_per_s=rows / statistics.median(seconds),
        wire_bytes_per_transition=wire_bytes / rows,
        stack_pair_bytes_per_transition=sum(a.stack_pair_bytes for a in fleet) / rows,
        stage_us_per_transition={
            stage: statistics.median(s[stage] for s in stages) / rows * 1e6 for stage in STAGES
        },
    )


def format_ingest_table(figures: IngestFigures) -> str:
    f = figures
    stage_total = sum(f.stage_us_per_transition.values())
    lines = [
        f"Learner ingest of Ape-X chunks: {f.actors} actors x {f.envs_per_actor} envs, {f.chunk_steps} "
        f"steps per chunk, Atari shapes {OBS_SHAPE} uint8, ReplayBuffer capacity {f.capacity:,} (full), "
        f"torch threads {torch.get_num_threads()}; median of {f.repeats} ingests of "
        f"{f.transitions_per_batch:,} transitions.",
        f"{'ingest ceiling (unpickle + rebuild + add)':<46}{f.transitions_per_s:>12,.0f} transitions/s",
        *(
            f"{'  ' + stage:<46}{us:>12,.1f} us/transition  ({us / stage_total:.0%})"
            for stage, us in f.stage_us_per_transition.items()
        ),
        f"{'wire, chunks (one frame per transition)':<46}{f.wire_bytes_per_transition:>12,.0f} B/transition",
        f"{'wire, whole (obs, next_obs) stacks':<46}{f.stack_pair_bytes_per_transition:>12,.0f} B/transition"
        f"  ({f.stack_pair_bytes_per_transition / f.wire_bytes_per_transition:.1f}x the chunks)",
    ]
    return "\n".join(lines)
