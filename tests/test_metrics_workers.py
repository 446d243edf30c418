"""/metrics under ``serve --workers N`` adds up every worker (docs/metrics.md, "Several
processes"): the merge of snapshot files on its own, then real worker processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from authsvc.rules.decision import Reason
from authsvc.service.metrics import Metrics
from authsvc.service.metrics_share import METRICS_DIR_ENV, WORKER_ENV, WorkerShare, retire
from authsvc.service.metrics_snapshot import dump, load
from tests.processes import AuthsvcServer, start_authsvc
from tests.test_propagation_process import auth, call

INTERVAL = 1.0  # metrics_share.SNAPSHOT_INTERVAL
SETTLE = INTERVAL + 0.5  # every worker has written a snapshot since the last request


def metrics(*, ok: int = 0, latencies: tuple[float, ...] = (), known: int = 0) -> Metrics:
    """A worker's metrics (no sharing of its own) with ``ok`` allowed requests, one
    decision per latency (as ``invalid_token``), and ``known`` tokens."""
    worker = Metrics(environ={})
    for _ in range(ok):
        worker.hot.decided(Reason.OK, 0.001)
    for seconds in latencies:
        worker.hot.decided(Reason.INVALID_TOKEN, seconds)
    worker.known_tokens.set(known)
    return worker


def snapshot(directory: Path, name: str, worker: Metrics) -> None:
    (directory / name).write_bytes(dump(worker.registry.collect()))


def scrape_text(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def scrape_share(share: WorkerShare) -> dict[str, Metric]:
    return scrape_text(share.exposition().decode())


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    """The one sample named ``sample`` with exactly ``labels``."""
    found = [
        s.value
        for family in families.values()
        for s in family.samples
        if s.name == sample and s.labels == labels
    ]
    assert len(found) == 1, (sample, labels, found)
    return found[0]


def decisions(families: dict[str, Metric]) -> float:
    """``authsvc_decisions_total`` summed over reasons."""
    return sum(s.value for s in families["authsvc_decisions"].samples if s.name.endswith("_total"))


def gauge_workers(families: dict[str, Metric]) -> list[str]:
    return sorted(s.labels["worker"] for s in families["authsvc_known_tokens"].samples)


class TestMerge:
    def test_a_standalone_process_shows_its_registry_alone(self) -> None:
        """Without the supervisor's directory nothing is shared: the output is unchanged."""
        alone = metrics(ok=3, known=2)
        assert alone.share is None
        assert alone.exposition() == generate_latest(alone.registry)

    def test_counters_are_summed(self, tmp_path: Path) -> None:
        """Per (name, labels), also for series only another worker has."""
        zero, one = metrics(ok=3), metrics(ok=5)
        one.store_lookups.labels(result="found").inc(2)
        one.store_errors.labels(operation="lookup").inc()
        snapshot(tmp_path, "worker-1.json", one)
        merged = scrape_share(WorkerShare(zero.registry, tmp_path, "0"))
        assert value(merged, "authsvc_decisions_total", reason="ok") == 8
        assert value(merged, "authsvc_decisions_total", reason="expired") == 0
        assert value(merged, "authsvc_store_lookups_total", result="found") == 2
        assert value(merged, "authsvc_store_errors_total", operation="lookup") == 1

    def test_histograms_are_summed_bucket_by_bucket(self, tmp_path: Path) -> None:
        zero = metrics(latencies=(0.0002, 0.003))
        one = metrics(latencies=(0.0002, 0.05, 3.0))
        snapshot(tmp_path, "worker-1.json", one)
        merged = scrape_share(WorkerShare(zero.registry, tmp_path, "0"))
        name = "authsvc_decision_latency_seconds"
        expected = {"0.0001": 0, "0.00025": 2, "0.005": 3, "0.025": 3, "0.1": 4, "+Inf": 5}
        for le, count in expected.items():
            assert value(merged, f"{name}_bucket", le=le) == count
        assert value(merged, f"{name}_count") == 5
        assert value(merged, f"{name}_sum") == pytest.approx(0.0002 + 0.003 + 0.0002 + 0.05 + 3)

    def test_created_is_the_earliest(self, tmp_path: Path) -> None:
        zero, one = metrics(), metrics()
        one.hot.created = 1000.0
        snapshot(tmp_path, "worker-1.json", one)
        merged = scrape_text(WorkerShare(zero.registry, tmp_path, "0").exposition().decode())
        assert value(merged, "authsvc_decisions_created", reason="ok") == 1000.0

    def test_gauges_are_shown_per_worker(self, tmp_path: Path) -> None:
        """Not summed: one series per live worker, labelled with its index."""
        snapshot(tmp_path, "worker-1.json", metrics(known=7))
        merged = scrape_share(WorkerShare(metrics(known=4).registry, tmp_path, "0"))
        assert value(merged, "authsvc_known_tokens", worker="0") == 4
        assert value(merged, "authsvc_known_tokens", worker="1") == 7
        assert gauge_workers(merged) == ["0", "1"]

    def test_retired_snapshots_count_but_their_gauges_do_not(self, tmp_path: Path) -> None:
        """A dead worker's last numbers: its counters stay in the sums; it has no state."""
        snapshot(tmp_path, "retired-1-0.json", metrics(ok=5, known=9))
        snapshot(tmp_path, "worker-1.json", metrics(ok=2, known=7))
        merged = scrape_share(WorkerShare(metrics(ok=1, known=4).registry, tmp_path, "0"))
        assert value(merged, "authsvc_decisions_total", reason="ok") == 8
        assert gauge_workers(merged) == ["0", "1"]

    def test_the_answering_worker_is_live_and_its_file_is_not_read(self, tmp_path: Path) -> None:
        zero = metrics(ok=1)
        share = WorkerShare(zero.registry, tmp_path, "0")
        share.write()
        zero.hot.decided(Reason.OK, 0.001)  # after the snapshot
        assert value(scrape_share(share), "authsvc_decisions_total", reason="ok") == 2

    def test_a_scrape_leaves_what_it_showed_on_disk(self, tmp_path: Path) -> None:
        """If the answering worker dies right after, its retired file holds as much."""
        zero = metrics(ok=4)
        scrape_share(WorkerShare(zero.registry, tmp_path, "0"))
        on_disk = {f.name: f for f in load((tmp_path / "worker-0.json").read_bytes())}
        assert value(on_disk, "authsvc_decisions_total", reason="ok") == 4
        assert sorted(p.name for p in tmp_path.iterdir()) == ["worker-0.json"]  # no .tmp left

    def test_the_output_keeps_every_family_and_its_type(self, tmp_path: Path) -> None:
        """Same families, types and help as one process shows: valid HELP/TYPE lines."""
        alone = scrape_text(generate_latest(metrics().registry).decode())
        snapshot(tmp_path, "worker-1.json", metrics())
        merged = scrape_share(WorkerShare(metrics().registry, tmp_path, "0"))
        described = {n: (f.type, f.documentation) for n, f in merged.items()}
        assert described == {n: (f.type, f.documentation) for n, f in alone.items()}

    def test_broken_snapshots_are_skipped_with_one_warning_each(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Garbage, a file cut short, the wrong shape, empty: skipped, never an error."""
        whole = dump(metrics(ok=100).registry.collect())
        broken = {
            "worker-2.json": b"\x00garbage",
            "worker-3.json": whole[: len(whole) // 2],
            "worker-4.json": b"",
            "retired-5-0.json": b'{"name": "authsvc_decisions"}',
            "retired-6-0.json": whole.replace(b'"counter"', b'"nonsense"'),
        }
        for name, data in broken.items():
            (tmp_path / name).write_bytes(data)
        snapshot(tmp_path, "worker-1.json", metrics(ok=2))
        share = WorkerShare(metrics(ok=1).registry, tmp_path, "0")
        with caplog.at_level(logging.WARNING, logger="authsvc.metrics"):
            for _ in range(3):
                assert value(scrape_share(share), "authsvc_decisions_total", reason="ok") == 3
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == len(broken)
        assert all(any(name in message for message in warned) for name in broken)

    def test_a_missing_directory_leaves_the_worker_alone(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        share = WorkerShare(metrics(ok=2).registry, tmp_path / "gone", "0")
        with caplog.at_level(logging.WARNING, logger="authsvc.metrics"):
            merged = scrape_share(share)
            scrape_share(share)
        assert value(merged, "authsvc_decisions_total", reason="ok") == 2
        assert len(caplog.records) == 2  # cannot write, cannot list: once each

    def test_a_file_retired_while_being_read_is_read_under_its_new_name(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The supervisor renames a dead worker's file between a scrape's listing and its
        read: the scrape lists again rather than lose that worker's counts."""
        snapshot(tmp_path, "worker-1.json", metrics(ok=5))
        listdir = os.listdir

        def stale_listing(path: Path) -> list[str]:
            names = listdir(path)
            if "worker-1.json" in names:
                retire(tmp_path, 1, 0)  # right after the listing
            return names

        monkeypatch.setattr(os, "listdir", stale_listing)
        merged = scrape_share(WorkerShare(metrics(ok=1).registry, tmp_path, "0"))
        assert value(merged, "authsvc_decisions_total", reason="ok") == 6
        assert gauge_workers(merged) == ["0"]


class TestSnapshots:
    async def test_stopping_writes_a_last_snapshot(self, tmp_path: Path) -> None:
        worker = metrics()
        share = WorkerShare(worker.registry, tmp_path, "3", interval=3600)
        share.start()
        worker.hot.decided(Reason.OK, 0.001)
        await share.stop()
        written = {f.name: f for f in load((tmp_path / "worker-3.json").read_bytes())}
        assert value(written, "authsvc_decisions_total", reason="ok") == 1

    def test_a_worker_writes_its_last_snapshot_when_its_event_loop_ends(
        self, tmp_path: Path
    ) -> None:
        """What `serve` relies on: Metrics built in the loop start the snapshots, and the
        end of asyncio.Runner (after the last request) writes a last one."""

        async def serve_one_request() -> None:
            worker = Metrics(environ={METRICS_DIR_ENV: str(tmp_path), WORKER_ENV: "2"})
            assert worker.share is not None
            worker.hot.decided(Reason.OK, 0.001)

        with asyncio.Runner() as runner:
            runner.run(serve_one_request())
        written = {f.name: f for f in load((tmp_path / "worker-2.json").read_bytes())}
        assert value(written, "authsvc_decisions_total", reason="ok") == 1


# --- real processes ------------------------------------------------------------------------


def worker_pids(server: AuthsvcServer) -> set[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
    return {int(pid) for pid in children.split()}


def environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)


def per_worker_decisions(server: AuthsvcServer) -> dict[int, float]:
    """Each live worker's decisions as its own snapshot file has them, by pid."""
    found = {}
    for pid in worker_pids(server):
        env = environment(pid)
        path = Path(env[METRICS_DIR_ENV]) / f"worker-{env[WORKER_ENV]}.json"
        found[pid] = decisions({f.name: f for f in load(path.read_bytes())})
    return found


def scrape(server: AuthsvcServer) -> dict[str, Metric]:
    """One /metrics on a new connection (so any worker may answer)."""
    status, body = call(server.admin_port, "GET", "/metrics", {})
    assert status == 200
    return scrape_text(body.decode())


def send(server: AuthsvcServer, secret: str, count: int) -> None:
    for _ in range(count):  # new connections: the kernel spreads them over the workers
        assert auth(server, secret) == 200


def assert_totals(server: AuthsvcServer, expected: int) -> None:
    """Every one of several scrapes, whichever worker answers, adds up every worker."""
    for _ in range(12):
        families = scrape(server)
        assert decisions(families) == expected
        assert gauge_workers(families) == ["0", "1"]


def replace(server: AuthsvcServer, victim: int, sig: signal.Signals) -> None:
    """Send ``sig`` to worker ``victim``; return once its replacement has written its own
    snapshot: it is running, and the dead worker's file is no longer under its name."""
    env = environment(victim)
    snapshot = Path(env[METRICS_DIR_ENV]) / f"worker-{env[WORKER_ENV]}.json"
    os.kill(victim, sig)
    deadline = time.monotonic() + 20
    started = None  # when the replacement process was first seen
    while time.monotonic() < deadline:
        if started is None:
            workers = worker_pids(server)
            if len(workers) == 2 and victim not in workers:
                started = time.time()  # its first snapshot comes a second after start-up
        elif snapshot.exists() and snapshot.stat().st_mtime > started:
            return
        time.sleep(0.05)
    pytest.fail(f"worker {victim} was not replaced:\n{server.log()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthsvcServer]:
    server = start_authsvc(tmp_path, serve_args=("--workers", "2"), cache={"ttl": "30s"})
    yield server
    server.stop()


class TestWorkerProcesses:
    def test_every_scrape_adds_up_both_workers(self, server: AuthsvcServer) -> None:
        reader = server.create_token("Reader")
        send(server, reader.secret, 60)
        time.sleep(SETTLE)
        spread = per_worker_decisions(server)
        assert sum(spread.values()) == 60
        assert all(spread.values()), f"one worker answered every request: {spread}"
        assert_totals(server, 60)
        assert "metrics snapshot" not in server.log()  # no file skipped, none unwritable

    def test_the_directory_is_private_and_removed_at_the_end(self, server: AuthsvcServer) -> None:
        directory = Path(environment(min(worker_pids(server)))[METRICS_DIR_ENV])
        assert directory.stat().st_mode & 0o777 == 0o700
        assert server.stop() == 0
        assert not directory.exists()

    def test_counts_survive_a_killed_worker(self, server: AuthsvcServer) -> None:
        """SIGKILL: the dead worker's last snapshot keeps counting next to its replacement's."""
        reader = server.create_token("Reader")
        send(server, reader.secret, 60)
        time.sleep(SETTLE)
        assert_totals(server, 60)
        spread = per_worker_decisions(server)
        victim = max(spread, key=lambda pid: spread[pid])
        replace(server, victim, signal.SIGKILL)
        assert_totals(server, 60)
        send(server, reader.secret, 20)
        time.sleep(SETTLE)
        assert_totals(server, 80)

    def test_a_worker_stopped_cleanly_counts_to_its_last_request(
        self, server: AuthsvcServer
    ) -> None:
        """SIGTERM right after the requests: the stopping worker writes a last snapshot."""
        reader = server.create_token("Reader")
        send(server, reader.secret, 60)
        victim = min(worker_pids(server))
        replace(server, victim, signal.SIGTERM)
        assert_totals(server, 60)
