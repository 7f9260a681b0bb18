"""srs's compiled per-ticket step of the offline classifier (see agent_runtime.offline.native)."""

from srs_native._core import Analyzer, NeedleGroups, Seen, exact_sum

__all__ = ["Analyzer", "NeedleGroups", "Seen", "exact_sum"]
