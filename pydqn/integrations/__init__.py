"""Bridges from other RL libraries to pydqn's replay: `pydqn.integrations.sb3` for
Stable-Baselines3 (and CleanRL, which uses SB3's buffer).

A layer above `pydqn.training`: it reuses the trainer's defaults and imports nothing above it.
"""
