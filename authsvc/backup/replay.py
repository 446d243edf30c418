"""``restore --replay-audit FILE [--replay-audit FILE ...]``: re-apply what the audit log
recorded after a backup, so that a restore never brings a revoked secret back (SPEC §13).

Several instances on one PostgreSQL store each write their own audit log, and logs get
rotated: every file given is read, and the records are applied in the order of their
times (a stable sort: records of one second keep their files' order). When no file holds
a record from before the backup, the logs may not reach back to it (a rotated file left
out) and the report says so. Records from the second the backup began on are applied; a
record is written after its change commits, so every change missing from the snapshot is
among them. The few of that second that the snapshot already holds are harmless to apply again
(a delete finds nothing, an update sets the same values), except a rotation, whose token
is then deleted although its new secret was saved: the safe side.

- ``token.delete`` and ``token.revoke_leaked`` of a current secret: the token is deleted;
- ``token.rotate``: the token is deleted (its new secret is in no backup: issue a new one);
- ``token.revoke_leaked`` of a previous secret: the token is deleted. Live, only that
  grace was ended; but if the logs miss a rotation (a host's file left out), the leaked
  secret is the restored token's current one, with or without a grace, and must not
  work again;
- ``token.update``: its permissions and rate limit (whichever it changed) are set again;
- ``token.create``: a token made after the backup is lost (its digest is in no backup),
  unless it was deleted afterwards anyway;
- ``token.grace_ended``: a grace still running in the restored store is ended again (the
  client had switched to the new secret after the backup), so the previous secret does
  not work again. With every log given, it is the grace that record ended: a rotation
  after the backup would have started another, and its record deletes the token.

Writes go straight to the store (not through TokenService, which would audit each again);
the restore is audited once, with the counts. A line that is not a readable record is
counted and reported, never fatal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authsvc.rules.tokens import is_token_id
from authsvc.store import KEEP, Keep, TokenChange, TokenStore

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the audit log's (rules.durations.rfc3339)


@dataclass(slots=True)
class ReplayReport:
    """What the replay did, token ids in the order first met."""

    deleted: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)  # deleted: rotated after the backup
    leaked_previous: list[str] = field(default_factory=list)  # deleted: see the module
    updated: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # created after the backup, still meant to exist
    graces_ended: list[str] = field(default_factory=list)
    applied: int = 0  # records after the backup that named a token change
    unreadable: list[str] = field(default_factory=list)  # "file:line"
    #: No file held a record from before the backup: changes may be missing from them.
    starts_after_backup: bool = False

    def counts(self) -> dict[str, int | bool]:
        """The numbers the ``store.restore`` audit record carries."""
        return {
            "records_applied": self.applied,
            "deleted": len(self.deleted),
            "rotated_deleted": len(self.rotated),
            "leaked_previous_deleted": len(self.leaked_previous),
            "updated": len(self.updated),
            "lost": len(self.lost),
            "graces_ended": len(self.graces_ended),
            "unreadable_lines": len(self.unreadable),
            "starts_after_backup": self.starts_after_backup,
        }


@dataclass(frozen=True, slots=True)
class _Record:
    action: str
    target: str
    details: dict[str, Any]


class _Unreadable(Exception):
    """This line is not an audit record this replay can read."""


async def replay_audit(
    store: TokenStore, paths: Sequence[Path], since: float, *, now: Callable[[], float]
) -> ReplayReport:
    """Apply the records of the audit logs at ``paths`` from ``since`` (epoch seconds, the
    backup's start) on to the opened ``store``, in time order. Raises OSError if a file
    cannot be read."""
    report = ReplayReport()
    created: list[str] = []
    cutoff = math.floor(since)  # the log has whole seconds
    due: list[tuple[float, str, _Record]] = []
    reaches_back = False
    for path in paths:
        for number, line in _lines(path):
            where = f"{path}:{number}"
            try:
                when, record = _parse(line)
            except _Unreadable:
                report.unreadable.append(where)
                continue
            reaches_back = reaches_back or when < cutoff
            if when >= cutoff and record is not None:
                due.append((when, where, record))
    report.starts_after_backup = not reaches_back
    due.sort(key=lambda entry: entry[0])  # stable: one second keeps the files' order
    for _, where, record in due:
        try:
            applied = await _apply(store, record, report, created, now())
        except _Unreadable:
            report.unreadable.append(where)
            continue
        report.applied += applied
    for token_id in created:
        if await store.get(token_id) is None:
            report.lost.append(token_id)
    return report


async def _apply(
    store: TokenStore, record: _Record, report: ReplayReport, created: list[str], now: float
) -> bool:
    """Apply one record; whether it was a token change."""
    target = record.target
    if record.action == "token.create":
        _add(created, target)
    elif record.action in {"token.delete", "token.revoke_leaked"}:
        if await store.delete(target) is not None:
            leaked_previous = record.details.get("revoked") == "previous_secret"
            _add(report.leaked_previous if leaked_previous else report.deleted, target)
        _drop(created, target)  # gone anyway: not lost
    elif record.action == "token.rotate":
        if await store.delete(target) is not None:
            _add(report.rotated, target)
    elif record.action == "token.update":
        if await store.update_token(target, _change(record.details)) is not None:
            _add(report.updated, target)
    elif record.action == "token.grace_ended":
        if await _ended_grace(store, target, now):
            _add(report.graces_ended, target)
    else:
        return False  # token.* actions this replay has nothing to do for
    return True


async def _ended_grace(store: TokenStore, token_id: str, now: float) -> bool:
    """End the token's grace, if one is still running; whether one was."""
    record = await store.get(token_id)
    if record is None or record.grace_ends_at is None or record.grace_ends_at <= now:
        return False
    return await store.end_grace(token_id, None) is not None


def _change(details: dict[str, Any]) -> TokenChange:
    """The values a ``token.update`` record set (those it did not change are kept)."""
    permissions: frozenset[str] | Keep = KEEP
    rate_limit: str | Keep | None = KEEP
    if "permissions" in details:
        listed = details["permissions"]
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise _Unreadable
        permissions = frozenset(listed)
    if "rate_limit" in details:
        limit = details["rate_limit"]
        if limit is not None and not isinstance(limit, str):
            raise _Unreadable
        rate_limit = limit
    if isinstance(permissions, Keep) and isinstance(rate_limit, Keep):
        raise _Unreadable
    return TokenChange(permissions=permissions, rate_limit=rate_limit)


def _parse(line: bytes) -> tuple[float, _Record | None]:
    """The time of the record on ``line``, and the record if it is a token change."""
    try:
        entry = json.loads(line)
        when = datetime.strptime(entry["time"], _TIME_FORMAT).replace(tzinfo=UTC).timestamp()
        action = entry["action"]
    except (ValueError, TypeError, KeyError):  # bad JSON, not an object, a field missing
        raise _Unreadable from None
    if not isinstance(action, str):
        raise _Unreadable
    if not action.startswith("token."):
        return when, None
    target, details = entry.get("target"), entry.get("details", {})
    if not isinstance(target, str) or not is_token_id(target) or not isinstance(details, dict):
        raise _Unreadable
    return when, _Record(action, target, details)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, content) of each non-blank line."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _add(ids: list[str], token_id: str) -> None:
    if token_id not in ids:
        ids.append(token_id)


def _drop(ids: list[str], token_id: str) -> None:
    if token_id in ids:
        ids.remove(token_id)
