"""A real ``authsvc serve`` process and its CLI, for tests that need the whole program
(end-to-end through nginx, live reload, signals)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.factories import BASE, full_policy

REPO = Path(__file__).resolve().parents[1]
START_DEADLINE = 30.0  # seconds; generous for slow CI machines, never reached when healthy
STOP_DEADLINE = 10.0


#: The permission catalog and IP filters the e2e tests rely on (the catalog: the one every
#: in-process test uses).
E2E_PERMISSIONS = BASE["permissions"]
E2E_IP_FILTERS = {
    "localhost": "allow 127.0.0.1\nallow ::1\ndeny all\n",
    "elsewhere": "allow 10.0.0.0/8\ndeny all\n",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    # Hermetic: the key comes from the key file of the test config, never from the caller,
    # and the checkout under test is what gets imported.
    env = {k: v for k, v in os.environ.items() if k not in ("AUTHSVC_CONFIG", "AUTHSVC_SECRET_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def stop_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token created through the CLI: its public id, name and the one-time secret."""

    id: str
    name: str
    secret: str

    @property
    def bearer(self) -> str:
        """The Authorization header value that presents this token."""
        return f"Bearer {self.secret}"


def write_authsvc_config(
    workdir: Path, *, auth_port: int, admin_port: int, **overrides: Any
) -> Path:
    """Write the test configuration (top-level keys replaced by ``overrides``, the
    ``security_policy`` entries merged into the full policy) into ``workdir`` and return
    its path."""
    config = {
        "listen": {"auth": f"127.0.0.1:{auth_port}", "admin": f"127.0.0.1:{admin_port}"},
        "trusted_proxies": ["127.0.0.1/32", "::1/128"],
        # nginx in front of the admin listener (deploy/nginx/authsvc-admin.conf) connects
        # from loopback too.
        "admin_trusted_proxies": ["127.0.0.1/32", "::1/128"],
        "store": f"sqlite:///{workdir / 'authsvc.db'}",
        "secret_key_file": str(workdir / "authsvc.key"),
        # 1s so that a token deleted through the CLI stops working within the test's deadline.
        "cache": {"ttl": "1s", "max_entries": 1000},
        "permissions": E2E_PERMISSIONS,
        "ip_filters": E2E_IP_FILTERS,
        "security_policy": full_policy(**overrides.pop("security_policy", {})),
        "audit_log": str(workdir / "audit.log"),
        **overrides,
    }
    path = workdir / "authsvc.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class AuthsvcServer:
    """``python -m authsvc --config ... serve`` as a subprocess, plus its CLI."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        *,
        auth_port: int,
        admin_port: int,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.serve_args = serve_args
        self.workdir = workdir
        self.auth_port = auth_port
        self.admin_port = admin_port
        self._log_path = workdir / "authsvc.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start serving and wait until ``/readyz`` answers 200."""
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "authsvc", "--config", str(self.config)),
                    *("serve", *self.serve_args),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=child_env(),
            )
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"authsvc serve exited with status {self._process.returncode}:\n{self.log()}"
                )
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"authsvc was not ready within {START_DEADLINE}s:\n{self.log()}")

    def _ready(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> int | None:
        """SIGTERM (the clean shutdown path), escalating to SIGKILL after a deadline.

        Returns the exit status (None if never started); stopping twice is harmless.
        """
        return None if self._process is None else stop_process(self._process, signal.SIGTERM)

    @property
    def pid(self) -> int:
        """The process id of ``serve`` (with --workers: the supervising parent)."""
        assert self._process is not None
        return self._process.pid

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): it keeps its sockets but answers nothing."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process run again (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def send(self, sig: signal.Signals) -> None:
        """Send a signal (SIGHUP: reload the configuration)."""
        assert self._process is not None
        self._process.send_signal(sig)

    def log(self) -> str:
        """Everything the service wrote to stdout and stderr so far."""
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def cli(self, *args: str) -> str:
        """Run ``authsvc --config <e2e config> ARGS``; its stdout, or an error with stderr."""
        result = subprocess.run(
            [sys.executable, "-m", "authsvc", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.workdir,
            env=child_env(),
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"authsvc {' '.join(args)} exited with {result.returncode}:\n{result.stderr}"
            )
        return result.stdout

    def create_token(
        self,
        *permissions: str,
        name: str | None = None,
        expires_in: str | None = None,
        ip_filter: str | None = None,
        rate_limit: str | None = None,
    ) -> IssuedToken:
        """Create a token with the CLI (a unique name unless given; ``rate_limit`` such as
        ``"5/s"``)."""
        name = name or f"e2e-{uuid.uuid4().hex[:12]}"
        args = ["token", "create", "--name", name, "--json"]
        for permission in permissions:
            args += ["--permission", permission]
        if expires_in is not None:
            args += ["--expires-in", expires_in]
        if ip_filter is not None:
            args += ["--ip-filter", ip_filter]
        if rate_limit is not None:
            args += ["--rate-limit", rate_limit]
        created = json.loads(self.cli(*args))
        return IssuedToken(id=created["id"], name=name, secret=created["token"])

    def delete_token(self, token_id: str) -> None:
        """Delete a token with the CLI."""
        self.cli("token", "delete", token_id)


def start_authsvc(
    workdir: Path, serve_args: tuple[str, ...] = (), **overrides: Any
) -> AuthsvcServer:
    """Write a configuration with free ports into ``workdir`` and start serving it
    (``serve_args``: extra arguments of ``serve``, e.g. ``("--workers", "2")``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    auth_port, admin_port = free_port(), free_port()
    config = write_authsvc_config(workdir, auth_port=auth_port, admin_port=admin_port, **overrides)
    server = AuthsvcServer(
        config, workdir, auth_port=auth_port, admin_port=admin_port, serve_args=serve_args
    )
    server.start()
    return server
