"""End-to-end fixtures: a real ``authsvc serve``, a real nginx, and an echo upstream.

nginx runs the SHIPPED files from ``deploy/nginx/``: the snippets are included in place,
and the upstream and site files get only their ports and snippet folder substituted, by
patterns that must match (so the tests can never drift onto a private copy).

Reusable fixtures: ``nginx_binary``, ``echo_upstream``, ``authsvc_server``,
``nginx_proxy``, ``admin_nginx`` (deploy/nginx/authsvc-admin.conf in front of the admin
listener; all session-wide), ``upstream`` (the echo upstream with its log emptied) and
``isolated_stack`` (a private authsvc + nginx + upstream for tests that break things).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.tokens import SECRET_PATTERN
from tests.e2e.upstream import EchoUpstream
from tests.pg import PgSession
from tests.processes import REPO, AuthsvcServer, free_port, start_authsvc, stop_process
from tests.required import unavailable
from tests.stores import STORE_KINDS

NGINX_DIR = REPO / "deploy" / "nginx"
FALLBACK_NGINX = "/usr/sbin/nginx"
START_DEADLINE = 30.0  # seconds; generous for slow CI machines, never reached when healthy
STOP_DEADLINE = 10.0


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response as the client of nginx received it."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class NginxProxy:
    """nginx running the shipped deploy/nginx/ configuration in a private prefix."""

    def __init__(
        self, binary: str, prefix: Path, *, listen_port: int, auth_port: int, upstream_port: int
    ) -> None:
        self.binary = binary
        self.prefix = prefix
        self.port = listen_port
        self._auth_port = auth_port
        self._upstream_port = upstream_port
        self._process: subprocess.Popen[bytes] | None = None

    def _render(self, name: str, substitutions: Sequence[tuple[str, str]]) -> Path:
        text = (NGINX_DIR / name).read_text()
        for pattern, replacement in substitutions:
            text, count = re.subn(pattern, replacement, text)
            if count == 0:
                raise AssertionError(f"deploy/nginx/{name} no longer contains /{pattern}/")
        target = self.prefix / name
        target.write_text(text)
        return target

    def write_config(self) -> Path:
        """Render the top-level nginx.conf and the substituted shipped files."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        upstream_conf = self._render(
            "authsvc-upstream.conf",
            [(r"server 127\.0\.0\.1:9090;", f"server 127.0.0.1:{self._auth_port};")],
        )
        site_conf = self._render(
            "example-site.conf",
            [
                (r"listen 8080;", f"listen 127.0.0.1:{self.port};"),
                (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{self._upstream_port};"),
                (r"include /etc/nginx/snippets/", f"include {NGINX_DIR}/"),
            ],
        )
        return self._write_main(upstream_conf, site_conf)

    def _write_main(self, *includes: Path) -> Path:
        """The top-level nginx.conf: a private prefix, and ``includes`` in its http block."""
        temp_paths = "\n".join(
            f"    {kind}_temp_path {self.prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, workers would switch to `nobody`, which cannot read the private prefix.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\n"
            f"pid {self.prefix / 'nginx.pid'};\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {self.prefix / 'access.log'};\n{temp_paths}\n"
            + "".join(f"    include {path};\n" for path in includes)
            + "}\n"
        )
        return conf

    def start(self) -> None:
        """Start nginx and wait until it accepts connections."""
        conf = self.write_config()
        error_log = self.prefix / "error.log"
        with (self.prefix / "nginx.out").open("ab") as out:
            self._process = subprocess.Popen(
                [self.binary, "-p", f"{self.prefix}/", "-c", str(conf), "-e", str(error_log)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self._process.returncode}:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {START_DEADLINE}s:\n{self.log()}")

    def stop(self) -> None:
        """Graceful shutdown (SIGQUIT), escalating after a deadline."""
        if self._process is not None:
            stop_process(self._process, signal.SIGQUIT)

    def log(self) -> str:
        """nginx's output and error log."""
        parts = [self.prefix / "nginx.out", self.prefix / "error.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Send one request with exactly this target and these headers (no normalisation)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append("Connection: close")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return self.send_raw(head + body, method=method)

    #: The loopback address requests come from (nginx sees it as $remote_addr).
    _source = "127.0.0.1"

    def send_raw(self, data: bytes, *, method: str = "GET") -> Response:
        """Send raw bytes as one request and read the response."""
        address, source = ("127.0.0.1", self.port), (self._source, 0)
        with socket.create_connection(address, timeout=10, source_address=source) as sock:
            sock.sendall(data)
            response = http.client.HTTPResponse(sock, method=method)
            try:
                response.begin()
                return Response(response.status, tuple(response.getheaders()), response.read())
            finally:
                response.close()


class AdminNginx(NginxProxy):
    """nginx running the shipped deploy/nginx/authsvc-admin.conf alone: the admin listener
    published on ``port``, with only the two ports substituted."""

    def __init__(self, binary: str, prefix: Path, *, listen_port: int, admin_port: int) -> None:
        super().__init__(binary, prefix, listen_port=listen_port, auth_port=0, upstream_port=0)
        self._admin_port = admin_port

    def write_config(self) -> Path:
        """Render the top-level nginx.conf and the substituted admin file."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        admin_conf = self._render(
            "authsvc-admin.conf",
            [
                (r"listen 8091;", f"listen 127.0.0.1:{self.port};"),
                (r"server 127\.0\.0\.1:9091;", f"server 127.0.0.1:{self._admin_port};"),
            ],
        )
        return self._write_main(admin_conf)


@dataclass(frozen=True, slots=True)
class Stack:
    """One complete set: authsvc, nginx in front of it, and the upstream nginx protects."""

    authsvc: AuthsvcServer
    nginx: NginxProxy
    upstream: EchoUpstream


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    """The nginx executable; skips (fails in CI) when nginx is not installed."""
    found = shutil.which("nginx")
    if found is None and os.access(FALLBACK_NGINX, os.X_OK):
        found = FALLBACK_NGINX
    if found is None:
        unavailable("nginx is not installed: apt-get install nginx")
    return found


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[EchoUpstream]:
    """The echo upstream shared by the session's nginx."""
    upstream = EchoUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session", params=STORE_KINDS)
def e2e_store(request: pytest.FixtureRequest, pg_session: PgSession) -> dict[str, Any]:
    """Config overrides selecting the store the session's authsvc runs on: the default
    SQLite file, or the session's PostgreSQL test database (every e2e test runs on both)."""
    if request.param == "sqlite":
        return {}
    if pg_session.url is None:
        unavailable(pg_session.reason)
    return {"store": pg_session.url}


@pytest.fixture(scope="session")
def authsvc_server(
    tmp_path_factory: pytest.TempPathFactory, e2e_store: dict[str, Any]
) -> Iterator[AuthsvcServer]:
    """``authsvc serve`` with the e2e configuration (cache.ttl 1s), ready to answer.

    After the session, its whole log (INFO level, every request the e2e tests made, junk
    and forged ones included) must not hold a single token secret (SECURITY 14)."""
    server = start_authsvc(tmp_path_factory.mktemp("authsvc"), **e2e_store)
    yield server
    server.stop()
    leaked = SECRET_PATTERN.findall(server.log())
    assert not leaked, f"token secrets in the authsvc log: {len(leaked)}"


@pytest.fixture(scope="session")
def nginx_proxy(
    nginx_binary: str,
    authsvc_server: AuthsvcServer,
    echo_upstream: EchoUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NginxProxy]:
    """nginx running deploy/nginx/, asking ``authsvc_server``, proxying to ``echo_upstream``."""
    proxy = NginxProxy(
        nginx_binary,
        tmp_path_factory.mktemp("nginx"),
        listen_port=free_port(),
        auth_port=authsvc_server.auth_port,
        upstream_port=echo_upstream.port,
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def admin_nginx(
    nginx_binary: str, authsvc_server: AuthsvcServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminNginx]:
    """nginx running deploy/nginx/authsvc-admin.conf in front of ``authsvc_server``'s admin
    listener (whose ``admin_trusted_proxies`` lists loopback, where nginx connects from)."""
    proxy = AdminNginx(
        nginx_binary,
        tmp_path_factory.mktemp("nginx-admin"),
        listen_port=free_port(),
        admin_port=authsvc_server.admin_port,
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def upstream(echo_upstream: EchoUpstream) -> EchoUpstream:
    """The session's echo upstream, its request log emptied for this test."""
    echo_upstream.clear()
    return echo_upstream


@contextlib.contextmanager
def running_stack(
    nginx_binary: str, workdir: Path, proxy_class: type[NginxProxy] = NginxProxy
) -> Iterator[Stack]:
    """Start an upstream, authsvc and nginx (``proxy_class``) in ``workdir``; stop them all
    afterwards, whatever happened."""
    upstream = EchoUpstream()
    upstream.start()
    server: AuthsvcServer | None = None
    proxy: NginxProxy | None = None
    try:
        server = start_authsvc(workdir / "authsvc")
        proxy = proxy_class(
            nginx_binary,
            workdir / "nginx",
            listen_port=free_port(),
            auth_port=server.auth_port,
            upstream_port=upstream.port,
        )
        proxy.start()
        yield Stack(authsvc=server, nginx=proxy, upstream=upstream)
    finally:
        if proxy is not None:
            proxy.stop()
        if server is not None:
            server.stop()
        upstream.stop()


@pytest.fixture
def isolated_stack(nginx_binary: str, tmp_path: Path) -> Iterator[Stack]:
    """A private authsvc + nginx + upstream that a test may stop or break."""
    with running_stack(nginx_binary, tmp_path) as stack:
        yield stack
