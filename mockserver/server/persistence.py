"""Moved to ``mockserver.storage.sqlite``; this alias remains until ``bench/bench.py`` imports it from there."""

from __future__ import annotations

from mockserver.storage.sqlite import SqliteState, StateFileError

__all__ = ["SqliteState", "StateFileError"]
