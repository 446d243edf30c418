"""The audit trail: one JSON line per change and per configuration reload.

Records hold ids, names and addresses, never a secret. Lines are appended with
``O_APPEND`` so the CLI and a running service can share one file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from authsvc.rules.durations import rfc3339

log = logging.getLogger("authsvc.audit")


class AuditLog:
    """Appends audit records to a file (and mirrors them to the ``authsvc.audit`` logger)."""

    def __init__(self, path: Path | None, clock: Callable[[], float]) -> None:
        self._path = path
        self._clock = clock

    def write(
        self,
        action: str,
        *,
        actor: str,
        target: str | None = None,
        client: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one event. Failing to write the audit log is logged loudly, but the
        change it describes is already durable, so it is not rolled back."""
        entry: dict[str, Any] = {
            "time": rfc3339(self._clock()),
            "action": action,
            "actor": actor,
            "target": target,
            "client": client,
        }
        if details:
            entry["details"] = dict(details)
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        log.info("%s", line)
        if self._path is None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as error:
            log.error("cannot write the audit log %s: %s", self._path, error)
