"""The benchmark workloads and reports behind ``pydqn bench`` and ``benchmarks/``: the replay
buffers (`replay`), prioritized replay (`prioritized`), batches delivered on a device (`device`)
and the training loop (`train`). Above training; only the CLI and ``benchmarks/`` import it."""
