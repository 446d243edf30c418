"""``serve --workers N``: each worker shares its metrics with the others through files, so
that /metrics adds up the whole service whichever worker answers the scrape.

The supervisor makes a private directory for the run and names it in ``AUTHSVC_METRICS_DIR``.
Each worker writes its whole registry to ``worker-<index>.json`` there every second, when it
answers /metrics, and once more when it stops; the auth handler's counting stays plain
integers, with no lock and no file on the request path. A scrape merges the answering
worker's live registry with the others' files (:func:`metrics_snapshot.merge`). When a worker
dies, the supervisor renames its file to ``retired-<index>-<n>.json`` before starting its
replacement: the dead worker's counts keep counting, so counters never go backwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from authsvc.service.background import Background
from authsvc.service.metrics_snapshot import SnapshotError, Source, dump, load, merge

__all__ = ["METRICS_DIR_ENV", "WORKER_ENV", "WorkerShare", "private_directory", "retire"]

METRICS_DIR_ENV = "AUTHSVC_METRICS_DIR"
WORKER_ENV = "AUTHSVC_WORKER"  # the worker's index, set by the supervisor
SNAPSHOT_INTERVAL = 1.0  # seconds: how far behind the other workers' numbers may be
READ_ATTEMPTS = 3
#: Where the run's directory goes when it can: a tmpfs (see :func:`private_directory`).
MEMORY_FILESYSTEM = "/dev/shm"  # noqa: S108 - only as the parent of a mkdtemp directory

_LIVE = re.compile(r"worker-(\d+)\.json")
_RETIRED = re.compile(r"retired-(\d+)-(\d+)\.json")

log = logging.getLogger("authsvc.metrics")

SortKey = tuple[int, int, int]


def live_name(worker: str | int) -> str:
    return f"worker-{worker}.json"


def private_directory() -> tempfile.TemporaryDirectory[str]:
    """The supervisor's directory for the run: mode 0700 (mkdtemp), so only this user reads
    or plants snapshots; removed when the supervisor exits.

    On a tmpfs when there is one: the write and rename of a snapshot take about 30 µs there
    and 350 µs on ext4 (which flushes the data of a file replaced by a rename), on the
    worker's event loop, every second."""
    try:
        return tempfile.TemporaryDirectory(prefix="authsvc-metrics-", dir=MEMORY_FILESYSTEM)
    except OSError:  # none (not Linux), or not writable: the usual temporary directory
        return tempfile.TemporaryDirectory(prefix="authsvc-metrics-")


def retire(directory: Path, worker: int, serial: int) -> None:
    """In the supervisor, after worker ``worker`` died and before it is restarted: keep its
    last snapshot under a name its replacement will not overwrite. One rename, so a scrape
    sees the file under one name or the other, never both."""
    try:
        os.replace(directory / live_name(worker), directory / f"retired-{worker}-{serial}.json")
    except FileNotFoundError:
        return  # it died before its first snapshot, and so before anyone saw its numbers
    except OSError as error:  # the supervisor must go on restarting workers regardless
        log.warning("cannot retire the metrics snapshot of worker %d: %s", worker, error)


class _Families:
    """Already merged families, in the shape generate_latest reads."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class WorkerShare:
    """One worker's side: writes its snapshot, and merges the others' into /metrics."""

    def __init__(
        self,
        registry: CollectorRegistry,
        directory: Path,
        worker: str,
        *,
        interval: float = SNAPSHOT_INTERVAL,
    ) -> None:
        self._registry = registry
        self._directory = directory
        self._worker = worker
        self._path = directory / live_name(worker)
        self._interval = interval
        self._written: bytes | None = None
        self._warned: set[str] = set()
        self._background = Background(f"metrics snapshots of worker {worker}", self._run)

    @classmethod
    def from_environ(
        cls, registry: CollectorRegistry, environ: Mapping[str, str]
    ) -> WorkerShare | None:
        """The share of a worker of ``serve --workers N``; None for a standalone process."""
        directory, worker = environ.get(METRICS_DIR_ENV), environ.get(WORKER_ENV, "")
        if not directory or not worker.isdigit():
            return None
        return cls(registry, Path(directory), worker)

    def start(self) -> None:
        """Write snapshots every interval from now on (needs the running event loop)."""
        self._background.start()

    async def stop(self) -> None:
        """Stop the snapshots, writing a last one."""
        await self._background.stop()
        self.write()  # in case the loop never ran; else a no-op: the numbers are written

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                self.write()
        finally:
            # Also when asyncio.Runner cancels this task as `serve` ends, after the last
            # request: without it a clean stop would lose up to an interval of counts.
            self.write()

    def write(self) -> list[Metric]:
        """Snapshot the registry to this worker's file; the families written.

        On the event loop, not in a thread: two writes finishing out of order could replace
        a newer snapshot with an older one. It is a few kB into the page cache; no fsync, as
        the file has to outlive the process, not the machine."""
        families = list(self._registry.collect())
        data = dump(families)
        if data != self._written:  # an idle worker does not rewrite the same numbers
            temporary = self._path.with_name(self._path.name + ".tmp")  # ignored by readers
            try:
                temporary.write_bytes(data)
                os.replace(temporary, self._path)  # readers see the old file or the new one
            except OSError as error:
                self._warn(self._path.name, f"cannot write the metrics snapshot: {error}")
            else:
                self._written = data
        return families

    def exposition(self) -> bytes:
        """/metrics for the whole service: this worker live, the others as last written."""
        # Written first, so that what this scrape shows is on disk: if this worker dies
        # right after, its retired file still holds at least as much.
        own = (0, int(self._worker), 0), Source(self._worker, self.write())
        sources = sorted([own, *self._others()], key=lambda pair: pair[0])
        return generate_latest(_Families(merge(source for _key, source in sources)))

    def _others(self) -> list[tuple[SortKey, Source]]:
        found: list[tuple[SortKey, Source]] = []
        for _attempt in range(READ_ATTEMPTS):
            found, vanished = self._scan()
            if not vanished:
                break
            # the supervisor retired a file between the listing and the read: list again,
            # or that dead worker's counts would be missing from this scrape
        return found

    def _scan(self) -> tuple[list[tuple[SortKey, Source]], bool]:
        try:
            names = os.listdir(self._directory)
        except OSError as error:
            self._warn(str(self._directory), f"cannot list the metrics directory: {error}")
            return [], False
        found, vanished = [], False
        for name in names:
            if live := _LIVE.fullmatch(name):
                if live[1] == self._worker:
                    continue  # this worker's own numbers come live from its registry
                key, worker = (0, int(live[1]), 0), live[1]
            elif retired := _RETIRED.fullmatch(name):
                key, worker = (1, int(retired[1]), int(retired[2])), None
            else:
                continue  # e.g. a temporary file being written
            try:
                families = load((self._directory / name).read_bytes())
            except FileNotFoundError:
                vanished = True
            except (OSError, SnapshotError) as error:
                self._warn(name, f"metrics snapshot {name} skipped: {error}")
            else:
                found.append((key, Source(worker, families)))
        return found, vanished

    def _warn(self, what: str, message: str) -> None:
        """Log once per file: a scrape every few seconds must not flood the log."""
        if what not in self._warned:
            self._warned.add(what)
            log.warning("%s", message)
