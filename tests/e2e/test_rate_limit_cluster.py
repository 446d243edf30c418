"""``rate_limits.scope`` (SPEC §12) with two real ``authsvc serve`` instances behind one nginx.

Both instances share one SQLite store (and its key file); the shipped upstream file lists
both servers, so nginx's round robin sends every other check to each. With ``scope:
cluster`` (counted through the local Redis) a "5/s" token gets 5 allows in total: the
cluster limiter never lets the total exceed the limit (authsvc/service/ratelimit_cluster.py).
With ``scope: instance`` each instance counts alone, so the same token gets up to 5 from
each: 10. What refills while a burst runs (one request per 0.2 s and bucket) is allowed
for. The Redis outage is tested at unit level (tests/test_ratelimit_cluster.py).
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.e2e.conftest import NginxProxy
from tests.e2e.upstream import EchoUpstream
from tests.processes import AuthsvcServer, free_port, start_authsvc
from tests.ratelimit_redis import DEFAULT_REDIS, REDIS_ENV
from tests.required import unavailable

pytestmark = pytest.mark.e2e

ITEMS = "/api/v1/items"
COUNT = 5  # the "5/s" limit: a full bucket's burst
REFILL_PER_SECOND = 5.0
BURST = 20  # requests back to back: well past both scopes' totals


class TwoInstanceProxy(NginxProxy):
    """nginx running the shipped files, its `authsvc` upstream listing two instances."""

    def __init__(
        self,
        binary: str,
        prefix: Path,
        *,
        listen_port: int,
        auth_ports: tuple[int, int],
        upstream_port: int,
    ) -> None:
        super().__init__(
            binary, prefix, listen_port=listen_port, auth_port=0, upstream_port=upstream_port
        )
        self._auth_ports = auth_ports

    def write_config(self) -> Path:
        conf = super().write_config()
        servers = "\n    ".join(f"server 127.0.0.1:{port};" for port in self._auth_ports)
        self._render("authsvc-upstream.conf", [(r"server 127\.0\.0\.1:9090;", servers)])
        return conf


@dataclass(frozen=True, slots=True)
class Cluster:
    """Two instances on one store, nginx in front of both, and the protected upstream."""

    instances: tuple[AuthsvcServer, AuthsvcServer]
    nginx: NginxProxy
    upstream: EchoUpstream


def metric(server: AuthsvcServer, sample: str) -> float:
    """The value of one sample (name and labels, as written) on ``server``'s /metrics."""
    connection = http.client.HTTPConnection("127.0.0.1", server.admin_port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"no {sample} in /metrics"
    return float(match.group(1))


def redis_url() -> str:
    """The test Redis (as for the limiter's unit tests), once it answered a PING."""
    url = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (RedisError, OSError) as error:
        unavailable(f"Redis at {url} does not answer ({error}); start redis-server")
    finally:
        client.close()
    return url


@contextlib.contextmanager
def running_cluster(nginx_binary: str, workdir: Path, scope: str) -> Iterator[Cluster]:
    """Start two instances with ``rate_limits.scope: scope`` on one SQLite store, the
    upstream and nginx; stop them all afterwards, whatever happened."""
    rate_limits: dict[str, str] = {"scope": scope}
    if scope == "cluster":
        rate_limits["redis"] = redis_url()
    shared: dict[str, Any] = {
        "store": f"sqlite:///{workdir / 'shared.db'}",
        "secret_key_file": str(workdir / "shared.key"),
        "rate_limits": rate_limits,
    }
    upstream = EchoUpstream()
    upstream.start()
    started: list[AuthsvcServer] = []
    proxy: NginxProxy | None = None
    try:
        for name in ("a", "b"):
            started.append(start_authsvc(workdir / name, **shared))
        first, second = started
        proxy = TwoInstanceProxy(
            nginx_binary,
            workdir / "nginx",
            listen_port=free_port(),
            auth_ports=(first.auth_port, second.auth_port),
            upstream_port=upstream.port,
        )
        proxy.start()
        yield Cluster(instances=(first, second), nginx=proxy, upstream=upstream)
    finally:
        if proxy is not None:
            proxy.stop()
        for server in started:
            server.stop()
        upstream.stop()


@pytest.fixture(scope="module", params=["cluster", "instance"])
def cluster(
    request: pytest.FixtureRequest, nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two instances behind one nginx, counting with the parametrised scope."""
    scope: str = request.param
    with running_cluster(nginx_binary, tmp_path_factory.mktemp(f"scope-{scope}"), scope) as made:
        yield made


def allowed_by_each(cluster: Cluster) -> list[float]:
    return [metric(server, 'authsvc_decisions_total{reason="ok"}') for server in cluster.instances]


def burst(cluster: Cluster, bearer: str) -> tuple[list[int], float]:
    """BURST requests back to back through nginx: their statuses and the seconds taken."""
    started = time.monotonic()
    statuses = [
        cluster.nginx.request("GET", ITEMS, [("Authorization", bearer)]).status
        for _ in range(BURST)
    ]
    return statuses, time.monotonic() - started


def test_scope_sets_the_total(cluster: Cluster, request: pytest.FixtureRequest) -> None:
    """A "5/s" token through two instances: 5 allows in total with ``scope: cluster``,
    5 per instance (10) with ``scope: instance``; then 429s. Both instances answered."""
    scope = request.node.callspec.params["cluster"]
    first, _ = cluster.instances
    token = first.create_token("Reader", rate_limit=f"{COUNT}/s")
    cluster.upstream.clear()
    before = allowed_by_each(cluster)
    statuses, seconds = burst(cluster, token.bearer)
    assert seconds < 1.0, "the burst was too slow to show the limit"
    instances = 1 if scope == "cluster" else len(cluster.instances)
    refill = instances * math.floor(seconds * REFILL_PER_SECOND)
    allowed = statuses.count(200)
    print(f"\nscope {scope}: {allowed} of {BURST} allowed in {seconds:.3f} s")
    assert set(statuses) == {200, 429}
    assert COUNT * instances <= allowed <= COUNT * instances + refill
    assert statuses[: COUNT * instances] == [200] * (COUNT * instances)
    assert len(cluster.upstream.requests) == allowed
    per_instance = [after - b for after, b in zip(allowed_by_each(cluster), before, strict=True)]
    assert all(count >= 1 for count in per_instance), per_instance
    assert sum(per_instance) == allowed


def test_no_instance_counts_alone_by_accident(cluster: Cluster) -> None:
    """Neither instance fell back to counting alone for want of Redis, so the cluster
    scope's total above was really counted through Redis."""
    for server in cluster.instances:
        assert metric(server, "authsvc_ratelimit_fallback") == 0
