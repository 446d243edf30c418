"""Processes of one benchmark run: authsvc instances, the floor, nginx; all stopped at exit."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

KEY_ENV = {"AUTHSVC_SECRET_KEY": "b" * 64}


def wait_http(port: int, path: str, ok: tuple[int, ...] = (200,), deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", path)
            if connection.getresponse().status in ok:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"nothing answered on port {port} within {deadline}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a process; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """CPU seconds used so far by ``root`` and its descendants (nginx's workers, the
    processes of ``serve --workers``) that are still running."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    total, wanted = 0.0, {root}
    while wanted:
        pid = wanted.pop()
        if pid in stats:
            total += stats[pid][1]
            wanted |= {child for child, (parent, _) in stats.items() if parent == pid}
    return total


class Procs:
    def __init__(self, work: Path) -> None:
        self.work = work
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        for name in list(self._procs):
            self.stop(name)

    @staticmethod
    def ports(*names: str) -> dict[str, int]:
        sockets = {name: socket.socket() for name in names}
        for sock in sockets.values():
            sock.bind(("127.0.0.1", 0))
        ports = {name: int(sock.getsockname()[1]) for name, sock in sockets.items()}
        for sock in sockets.values():
            sock.close()
        return ports

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        log = (self.work / f"{name}.log").open("ab")
        self._procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        return self._procs[name].pid

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    def stop(self, name: str) -> None:
        process = self._procs.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if name != "nginx" else signal.SIGQUIT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def authsvc(self, config: Path, admin_port: int, *, name: str, workers: int = 1) -> int:
        pid = self.spawn(
            name,
            [sys.executable, "-m", "authsvc", "--config", str(config), "serve"]
            + (["--workers", str(workers)] if workers != 1 else []),
            env={**KEY_ENV, "AUTHSVC_LOG_LEVEL": "WARNING"},
        )
        wait_http(admin_port, "/readyz")
        return pid

    def nginx(self, conf: Path, wait_port: int) -> None:
        prefix = conf.parent
        self.spawn(
            "nginx",
            ["nginx", "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")],
        )
        wait_http(wait_port, "/api/v1/users")
