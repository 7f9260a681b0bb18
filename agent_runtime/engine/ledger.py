"""Crash counting that survives restarts: a small ledger in the committed offset's metadata.

A record that kills its process (a crash, or a hang the liveness probe ends) is
redelivered to the next process, which dies the same way: the attempt count in memory
dies with it. So the count travels with the partition's committed offset, whose
metadata Kafka keeps for the group: ``{"srs": 1, "head": O, "deaths": D}`` says "D
processes owned this partition while offset O — the next record to process — was not
done, and ended without finishing it".

The rules (``Dispatcher`` applies them):

- A process that gets a partition whose committed offset is ``C`` reads ``D`` (0 unless
  the ledger's ``head`` is ``C``). Before it starts any record of the partition it
  commits ``C`` with ``deaths = D + 1`` — pessimistically: should it die, that death is
  already counted. A clean end (revoke, shutdown) commits the real count back.
- ``D >= crash_loop_limit``: record ``C`` is dead-lettered as ``crash_loop`` without
  running it.
- ``D >= 1`` (suspect mode): record ``C`` runs alone; once it is done, the new position
  is committed (``deaths = 1``) before the others start. The head cannot be blamed for
  a record behind it: it finishes on its own first. A poison record further back
  becomes the head after a few restarts and is counted from then on.
- Offsets stored during normal processing carry ``deaths = 1`` for their position: if
  the process dies, the next owner runs that head alone first.
- Every commit also says how far the committing process had *handled* records
  (``seen``): records from the committed offset up to ``seen`` are handled again by the
  next owner — the price of a crash or a rebalance in provider calls, which it counts
  (``srs_agent_reprocessed_total``) and logs. After a crash the figure is a floor: what
  was handled after the last commit is not in it.

The cost: one synchronous commit per partition assignment (and one more in suspect
mode), none per record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

_VERSION: Final = 1


@dataclass(frozen=True)
class CrashLedger:
    """``deaths`` processes ended without finishing the record at offset ``head``; the
    committing process had handled records up to offset ``seen`` (None: none past ``head``)."""

    head: int
    deaths: int
    seen: int | None = None

    def encode(self) -> str:
        """The commit metadata string (small: Kafka limits it, 4 KiB by default)."""
        # Formatted by hand: stored with every offset store, so it should cost next to nothing.
        seen = f',"seen":{int(self.seen)}' if self.seen is not None and self.seen >= self.head else ""
        return f'{{"srs":{_VERSION},"head":{int(self.head)},"deaths":{int(self.deaths)}{seen}}}'

    @classmethod
    def decode(cls, metadata: str | None, committed: int) -> CrashLedger:
        """The ledger of a partition committed at ``committed``; deaths 0 when the metadata
        is absent, foreign, or about another offset."""
        if metadata:
            try:
                value = json.loads(metadata)
            except ValueError:
                value = None
            if (
                isinstance(value, dict)
                and value.get("srs") == _VERSION
                and value.get("head") == committed
                and isinstance(value.get("deaths"), int)
                and value["deaths"] >= 0
            ):
                seen = value.get("seen")
                return cls(committed, value["deaths"], seen if isinstance(seen, int) and seen >= committed else None)
        return cls(committed, 0)
