"""The learner's ingest of Ape-X actors' experience chunks: unpickle, rebuild the add() calls with
each actor's ChunkReader, add them to one ReplayBuffer of all actors' streams (4 actors x 4 envs,
50 steps per chunk, Atari shapes); and the bytes a chunk costs on the wire against whole
(obs, next_obs) stacks.

Run: pytest benchmarks/test_actors_benchmark.py --benchmark-columns=median,iqr,ops --benchmark-group-by=group
"""

import numpy as np
import pytest
from bench_support import CAPACITY

from pydqn.bench.actors import (
    ActorChunks,
    LearnerIngest,
    arrival_order,
    format_ingest_table,
    make_actor_chunks,
    run_ingest_bench,
)
from pydqn.bench.fleet import format_fleet_table, run_fleet_bench
from pydqn.bench.replay import FRAME_SHAPE

ACTORS, ENVS_PER_ACTOR, CHUNK_STEPS, CHUNKS = 4, 4, 50, 2


@pytest.fixture(scope="module")
def fleet() -> list[ActorChunks]:
    pool = np.random.default_rng(0).integers(0, 256, (1021, *FRAME_SHAPE), dtype=np.uint8)
    return [make_actor_chunks(a, ENVS_PER_ACTOR, CHUNK_STEPS, CHUNKS, pool, seed=0) for a in range(ACTORS)]


@pytest.fixture(scope="module")
def full_learner(fleet) -> LearnerIngest:
    """A learner whose buffer the chunks have filled (overwriting, as in a run)."""
    learner = LearnerIngest(CAPACITY, ACTORS, ENVS_PER_ACTOR)
    while len(learner.buffer) < CAPACITY:
        learner.restart_streams()
        learner.ingest(arrival_order(fleet))
    return learner


def test_ingest_chunks(benchmark, fleet, full_learner):
    """One batch: CHUNKS chunks from each actor, as they arrive; the stats are per batch."""
    arrivals = arrival_order(fleet)
    rows = sum(a.rows for a in fleet)

    def fresh_streams():
        full_learner.restart_streams()  # the batch's first rows start episodes again
        return (arrivals,), {}

    benchmark.group = f"learner ingest ({rows:,} transitions per round)"
    added = benchmark.pedantic(full_learner.ingest, setup=fresh_streams, rounds=20)
    benchmark.extra_info["transitions_per_round"] = rows
    assert added == rows == ACTORS * ENVS_PER_ACTOR * CHUNK_STEPS * CHUNKS
    assert len(full_learner.buffer) == CAPACITY


def test_an_empty_buffer_holds_every_ingested_transition(benchmark, fleet):
    learner = LearnerIngest(10 * CHUNKS * CHUNK_STEPS * ACTORS * ENVS_PER_ACTOR, ACTORS, ENVS_PER_ACTOR)
    benchmark.group = "learner ingest into an empty buffer (one round)"
    added = benchmark.pedantic(learner.ingest, args=(arrival_order(fleet),), rounds=1)
    assert len(learner.buffer) == added == sum(a.rows for a in fleet)


def test_wire_bytes_per_transition(benchmark, fleet):
    """Pickled chunks against the same rows pickled as whole stacks: about 1/8 (a frame, not 8)."""
    benchmark.group = "wire bytes per transition (time: summing them)"
    rows = sum(a.rows for a in fleet)
    chunk_bytes = benchmark.pedantic(lambda: sum(len(p) for a in fleet for p in a.payloads), rounds=1)
    stack_pair_bytes = sum(a.stack_pair_bytes for a in fleet)
    benchmark.extra_info["chunk_bytes_per_transition"] = chunk_bytes / rows
    benchmark.extra_info["stack_pair_bytes_per_transition"] = stack_pair_bytes / rows
    assert np.prod(FRAME_SHAPE) < chunk_bytes / rows < stack_pair_bytes / rows / 6


def test_the_bench_report(benchmark):
    """`pydqn bench --actors`' ingest figures and table, end to end, on a small batch."""
    benchmark.group = "pydqn bench --actors, learner ingest (one run)"
    figures = benchmark.pedantic(
        run_ingest_bench, kwargs=dict(capacity=CAPACITY, chunks=CHUNKS, repeats=3, log=print), rounds=1
    )
    benchmark.extra_info["transitions_per_s"] = figures.transitions_per_s
    assert figures.transitions_per_batch == ACTORS * ENVS_PER_ACTOR * CHUNK_STEPS * CHUNKS
    assert figures.transitions_per_s > 0
    assert figures.wire_bytes_per_transition < figures.stack_pair_bytes_per_transition / 6
    table = format_ingest_table(figures)
    assert "ingest ceiling" in table and "transitions/s" in table


def test_the_fleet_report_measures_actors_through_the_trainer(benchmark):
    """`pydqn bench --actors`' actor figures: a CartPole actor through ApexTrainer and Ray."""
    pytest.importorskip("ray")
    benchmark.group = "pydqn bench --actors, actors' frames/s (one run)"
    figures = benchmark.pedantic(
        run_fleet_bench, args=("CartPole-v1", [1], 3_000, 1), kwargs=dict(ray_num_cpus=1), rounds=1
    )
    assert [f.actors for f in figures] == [1]
    assert figures[0].frames_per_s > 0 and figures[0].transitions_per_s_per_actor > 0
    assert 16 <= figures[0].bytes_per_transition < 100  # one 4-float frame and the scalars
    table = format_fleet_table("CartPole-v1", figures, ingest_ceiling=50_000.0)
    assert "actors one learner feeds" in table
