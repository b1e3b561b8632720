"""The benchmark workloads and reports behind ``pydqn bench`` and ``benchmarks/``: the replay
buffers (`replay`), prioritized replay (`prioritized`), batches delivered on a device (`device`),
the training loop (`train`), SB3's buffers against pydqn's (`sb3`) and the learner's ingest of
Ape-X actors' chunks (`actors`). Above training; only the CLI and ``benchmarks/`` import it."""
