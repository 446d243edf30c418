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

    def stop(self, name: str) -> None:
        process = self._procs.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if name != "nginx" else signal.SIGQUIT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def authsvc(self, config: Path, admin_port: int, *, name: str) -> int:
        pid = self.spawn(
            name,
            [sys.executable, "-m", "authsvc", "--config", str(config), "serve"],
            env={**KEY_ENV, "AUTHSVC_LOG_LEVEL": "WARNING"},
        )
        wait_http(admin_port, "/readyz")
        return pid

    def nginx(self, ports: dict[str, int], shipped: Path) -> None:
        prefix = self.work / "nginx"
        www = prefix / "www"
        for path in ("api/v1/queries/running", "api/v1/users"):
            (www / path).parent.mkdir(parents=True, exist_ok=True)
            (www / path).write_text("ok\n")
        upstream = (shipped / "authsvc-upstream.conf").read_text()
        (prefix / "upstream.conf").write_text(
            upstream.replace("server 127.0.0.1:9090;", f"server 127.0.0.1:{ports['auth']};")
        )
        auth = (shipped / "authsvc-auth.conf").read_text()
        floor = auth.replace("location = /_authsvc", "location = /_floor").replace(
            "http://authsvc/auth", "http://floor/auth"
        )
        (prefix / "floor-auth.conf").write_text(floor)
        # The optional micro-cache (deploy/nginx/microcache/), its zone in the work dir.
        zone = (shipped / "microcache" / "authsvc-microcache-zone.conf").read_text()
        tmpfs = "/run/authsvc-microcache "
        if tmpfs not in zone:
            raise RuntimeError(f"authsvc-microcache-zone.conf no longer uses {tmpfs.strip()}")
        (prefix / "microcache-zone.conf").write_text(
            zone.replace(tmpfs, f"{prefix / 'microcache'} ")
        )
        temp = "".join(
            f"  {k}_temp_path {prefix / k};\n"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        svc_listens = "".join(
            f"    listen 127.0.0.1:{ports[n]};\n"
            for n in ("svc-hit", "svc-deny", "svc-junk", "svc-miss")
        )
        conf = f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}  include {prefix / "upstream.conf"};
  include {prefix / "microcache-zone.conf"};
  upstream floor {{ server 127.0.0.1:{ports["floor-app"]}; keepalive 32; }}
  server {{ listen 127.0.0.1:{ports["plain"]}; root {www}; location / {{ }} }}
  server {{
    listen 127.0.0.1:{ports["nginxauth"]}; root {www};
    location / {{ auth_request /_stub; }}
    location = /_stub {{ internal; return 204; }}
  }}
  server {{
    listen 127.0.0.1:{ports["floor"]}; root {www};
    include {prefix / "floor-auth.conf"};
    location / {{ auth_request /_floor; }}
  }}
  server {{
{svc_listens}    root {www};
    include {shipped / "authsvc-auth.conf"};
    location / {{ include {shipped / "authsvc-protect.conf"}; }}
  }}
  server {{
    listen 127.0.0.1:{ports["svc-microcache"]}; root {www};
    include {shipped / "microcache" / "authsvc-auth-microcache.conf"};
    location / {{ include {shipped / "authsvc-protect.conf"}; }}
  }}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        self.spawn(
            "nginx",
            [
                "nginx",
                "-p",
                f"{prefix}/",
                "-c",
                str(prefix / "nginx.conf"),
                "-e",
                str(prefix / "error.log"),
            ],
        )
        wait_http(ports["plain"], "/api/v1/users")
