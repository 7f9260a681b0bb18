"""Pure: which config keys of a Kafka topic to SET and which overrides to DELETE.

The TicketTopic's ``spec.config`` holds the topic's dynamic overrides; everything else is
the broker's default and is never touched. Kafka normalises what it stores, so values
are compared the way Kafka spells them (:func:`same_config_value`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from srs_operator.models.topicstate import ConfigState


@dataclass(frozen=True)
class ConfigDelta:
    """An ``incremental_alter_configs`` request: keys to SET and overrides to DELETE."""

    set: Mapping[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.delete)

    def describe(self) -> str:
        """``set retention.ms=1000; removed cleanup.policy`` (for Events)."""
        parts = []
        if self.set:
            parts.append("set " + ", ".join(f"{k}={v}" for k, v in self.set.items()))
        if self.delete:
            parts.append("removed " + ", ".join(self.delete))
        return "; ".join(parts)


def same_config_value(desired: str, actual: str | None) -> bool:
    """Whether Kafka's stored ``actual`` is its spelling of ``desired``. Kafka normalises what
    it stores (``True`` → ``true``, ``0100`` → ``100``, surrounding blanks dropped); comparing
    literally would re-apply such a value on every reconcile."""
    if actual is None:
        return False
    want, have = desired.strip(), actual.strip()
    if want == have:
        return True
    if {want.lower(), have.lower()} <= {"true", "false"}:
        return want.lower() == have.lower()
    for number in (int, float):
        try:
            return bool(number(want) == number(have))
        except ValueError:
            continue
    if "," in want or "," in have:
        return [v.strip() for v in want.split(",")] == [v.strip() for v in have.split(",")]
    return False


def diff_config(desired: Mapping[str, str], observed: Mapping[str, ConfigState]) -> ConfigDelta:
    """SET every desired key that is not already a topic override with that value (a key
    that merely has the desired value as a broker default is pinned on the topic, so a
    later change of the broker default does not move it); DELETE every topic override
    the spec no longer lists. Broker defaults and static configs are never touched."""
    to_set = {
        key: value
        for key, value in sorted(desired.items())
        if not (
            (entry := observed.get(key)) is not None and entry.is_override and same_config_value(value, entry.value)
        )
    }
    to_delete = tuple(sorted(k for k, v in observed.items() if v.is_override and not v.read_only and k not in desired))
    return ConfigDelta(set=to_set, delete=to_delete)
