"""A worker's metrics as a snapshot file, and several workers' metrics merged into one.

Pure functions, no files: :mod:`authsvc.service.metrics_share` reads and writes them.

The snapshot is JSON rather than the text exposition: a file cut short does not parse at
all, where a text file cut at a line end would parse and silently lose series.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

__all__ = ["SnapshotError", "Source", "dump", "load", "merge"]

#: Types whose samples add up across workers (a ``_created`` sample takes the minimum).
#: Every other type (gauge, info, stateset...) is a state of one process, shown per worker.
SUMMED_TYPES = frozenset({"counter", "histogram", "summary"})
WORKER_LABEL = "worker"

LabelKey = tuple[tuple[str, str], ...]


class SnapshotError(ValueError):
    """A snapshot that is not one :func:`dump` wrote whole."""


def dump(families: Iterable[Metric]) -> bytes:
    """A registry's collected families as the bytes of a snapshot file."""
    return json.dumps(
        [
            {
                "name": family.name,
                "help": family.documentation,
                "type": family.type,
                "unit": family.unit,
                # timestamps and exemplars are dropped: authsvc sets neither
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
            for family in families
        ],
        separators=(",", ":"),
    ).encode()


def load(data: bytes) -> list[Metric]:
    """The families of a snapshot; :class:`SnapshotError` unless it is whole and well formed."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, list):
            raise SnapshotError("not a list of metric families")
        return [_family(entry) for entry in raw]
    except (ValueError, TypeError, KeyError) as error:  # JSON, unpacking, Metric's own checks
        raise SnapshotError(str(error) or type(error).__name__) from error


def _family(entry: dict[str, Any]) -> Metric:
    name, documentation, kind, unit = (entry[k] for k in ("name", "help", "type", "unit"))
    if not all(isinstance(v, str) for v in (name, documentation, kind, unit)):
        raise SnapshotError(f"family {name!r}: name, help, type and unit must be strings")
    family = Metric(name, documentation, kind, unit)
    for sample_name, labels, value in entry["samples"]:
        if not (isinstance(sample_name, str) and sample_name.startswith(name)):
            raise SnapshotError(f"family {name!r}: sample {sample_name!r}")
        if not (
            isinstance(labels, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        ):
            raise SnapshotError(f"{sample_name}: labels must map strings to strings")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SnapshotError(f"{sample_name}: value {value!r} is not a number")
        family.add_sample(sample_name, labels, value)
    return family


@dataclass(frozen=True, slots=True)
class Source:
    """One worker's families: ``worker`` is its index, or None for a retired snapshot (the
    last one of a worker that died), whose counters still count and whose gauges do not."""

    worker: str | None
    families: Sequence[Metric]


@dataclass(slots=True)
class _Merged:
    family: Metric  # name, help, type and unit; the samples are in ``values``
    values: dict[tuple[str, LabelKey], tuple[dict[str, str], float]] = field(default_factory=dict)

    def add(self, name: str, labels: dict[str, str], value: float, *, created: bool) -> None:
        key = (name, tuple(sorted(labels.items())))
        previous = self.values.get(key)
        if previous is not None:
            # the series exists since its earliest creation in any worker
            value = min(previous[1], value) if created else previous[1] + value
        self.values[key] = (labels, value)


def merge(sources: Iterable[Source]) -> list[Metric]:
    """All sources' families as one process would show them (see docs/metrics.md):
    counters and histograms summed by (sample name, labels), ``_created`` the minimum,
    gauges of live workers labelled ``worker="<index>"``, gauges of retired ones dropped.

    Families and series keep their first-seen order. A family whose type differs from the
    one seen first is left out of that source (it cannot come from the same program).
    """
    merged: dict[str, _Merged] = {}
    for source in sources:
        for family in source.families:
            into = merged.setdefault(
                family.name,
                _Merged(Metric(family.name, family.documentation, family.type, family.unit)),
            )
            if into.family.type != family.type:
                continue
            if family.type in SUMMED_TYPES:
                extra = {}
            elif source.worker is not None:
                extra = {WORKER_LABEL: source.worker}
            else:
                continue
            created = family.name + "_created"
            for sample in family.samples:
                labels = {**sample.labels, **extra} if extra else sample.labels
                into.add(sample.name, labels, sample.value, created=sample.name == created)
    result = []
    for entry in merged.values():
        for (name, _key), (labels, value) in entry.values.items():
            entry.family.add_sample(name, labels, value)
        result.append(entry.family)
    return result
