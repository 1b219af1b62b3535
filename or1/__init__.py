"""or1: the Skywork-OR1 (MAGIC) recipe for RL on reasoning models."""

__version__ = "0.1.0"
