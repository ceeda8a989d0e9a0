"""Results on disk: atomic writes, Parquet trajectories, JSON summary and manifest."""

from .atomic import atomic_write_bytes, atomic_write_text, ensure_writable_dir
from .results import read_trajectories, write_json, write_trajectories

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_writable_dir",
    "read_trajectories",
    "write_json",
    "write_trajectories",
]
