"""``authsvc serve --workers N``: N processes sharing the listening sockets.

The parent binds both listeners once, then runs N ordinary ``serve`` processes that
inherit the sockets (the kernel spreads connections among them), forwards SIGHUP and
SIGTERM to them, and restarts a worker that dies unexpectedly. Each worker has its own
cache and follows the store's change feed, so a change made through one worker reaches
the others within the propagation bound (docs/security-model.md), as between separate instances.

The parent also makes a private directory for the run where each worker leaves a snapshot
of its metrics, so that /metrics adds up every worker (service/metrics_share.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from authsvc.config import Config, ListenAddress
from authsvc.service.metrics_share import (
    METRICS_DIR_ENV,
    WORKER_ENV,
    private_directory,
    retire,
)

log = logging.getLogger("authsvc.workers")

#: Environment variable handing a worker its inherited socket descriptors: "auth,admin".
FDS_ENV = "AUTHSVC_LISTEN_FDS"
RESTART_DELAY = 1.0
#: A worker's exit status for a refusal to start (the CLI's configuration error status).
REFUSED = 2


def bind(address: ListenAddress) -> socket.socket:
    """A listening socket for ``address``, inheritable by the workers."""
    if address.unix_path is not None:
        path = Path(address.unix_path)
        if path.is_socket():
            path.unlink()  # a stale socket from an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
    else:
        family = socket.AF_INET6 if ":" in (address.host or "") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host or "", address.port or 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def inherited_sockets() -> tuple[socket.socket, socket.socket] | None:
    """In a worker: the (auth, admin) sockets the parent bound; None when standalone."""
    value = os.environ.get(FDS_ENV)
    if not value:
        return None
    auth_fd, admin_fd = (int(fd) for fd in value.split(","))
    return socket.socket(fileno=auth_fd), socket.socket(fileno=admin_fd)


class Supervisor:
    """Starts, watches and stops the worker processes."""

    def __init__(self, config: Config, count: int) -> None:
        self._config = config
        self._count = count
        self._sockets = (bind(config.listen.auth), bind(config.listen.admin))
        self._workers: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False
        self._metrics_dir = Path()  # set by run()
        self._retired = 0

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 when every worker stopped cleanly."""
        with private_directory() as metrics_dir:
            self._metrics_dir = Path(metrics_dir)
            return self._supervise()

    def _supervise(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        for index in range(self._count):
            self._start(index)
        log.info(
            "authsvc serving with %d workers: auth on %s, admin on %s",
            self._count,
            self._config.listen.auth.text,
            self._config.listen.admin.text,
        )
        status = 0
        while self._workers:
            pid, code = os.wait()
            worker = next((i for i, p in self._workers.items() if p.pid == pid), None)
            if worker is None:
                continue
            del self._workers[worker]
            if self._stopping:
                # a worker still starting may die of the SIGTERM itself: that is a clean stop
                clean = os.waitstatus_to_exitcode(code) in (0, -signal.SIGTERM)
                status = status or (0 if clean else 1)
                continue
            if os.waitstatus_to_exitcode(code) == REFUSED:
                # a refusal (configuration, or a key that is not the store's) repeats on
                # every restart: stop, so that systemd's RestartPreventExitStatus=2 holds
                log.error("worker %d refused to start (exit status 2); stopping", worker)
                self._stopping = True
                for process in self._workers.values():
                    # not Popen.poll(): it would reap a worker that os.wait() must see
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGTERM)
                status = REFUSED
                continue
            log.error(
                "worker %d (pid %d) exited with status %d; restarting it",
                worker,
                pid,
                os.waitstatus_to_exitcode(code),
            )
            # before the replacement can overwrite it: the dead worker's counts keep counting
            retire(self._metrics_dir, worker, self._retired)
            self._retired += 1
            time.sleep(RESTART_DELAY)
            if not self._stopping:
                self._start(worker)
        for sock in self._sockets:
            sock.close()
        log.info("all workers stopped")
        return status

    def _start(self, index: int) -> None:
        fds = tuple(sock.fileno() for sock in self._sockets)
        env = {
            **os.environ,
            FDS_ENV: f"{fds[0]},{fds[1]}",
            WORKER_ENV: str(index),
            METRICS_DIR_ENV: str(self._metrics_dir),
        }
        argv = [sys.executable, "-m", "authsvc", "--config", str(self._config.path), "serve"]
        self._workers[index] = subprocess.Popen(argv, pass_fds=fds, env=env)  # noqa: S603

    def _signal_workers(self, signum: int) -> None:
        for process in self._workers.values():
            if process.poll() is None:
                process.send_signal(signum)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self._signal_workers(signal.SIGTERM)

    def _on_hup(self, signum: int, _frame: FrameType | None) -> None:
        self._signal_workers(signal.SIGHUP)
