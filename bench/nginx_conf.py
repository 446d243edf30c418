"""The benchmark's nginx: one server block per path, built from the shipped deploy/nginx files.

Files derived from the shipped ones are written into the nginx prefix, each derivation
failing loudly when the shipped text it relies on has changed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Where each svc-microcache-mix request's cache status is logged: "STATUS CACHE-STATUS".
MICROCACHE_LOG = "microcache-mix.log"
#: Seconds after a run by which nginx has written all of that log (flush=1s).
FLUSH_WAIT = 1.5


def _replace(text: str, old: str, new: str, source: str) -> str:
    if old not in text:
        raise RuntimeError(f"bench: {source} no longer contains {old!r}")
    return text.replace(old, new)


def microcache_dir(prefix: Path) -> Path:
    """Where the micro-cache keeps its files: a tmpfs, as the shipped zone file asks
    (``/dev/shm`` where there is one), named after the run's work dir."""
    shm = Path("/dev/shm")  # noqa: S108 - a name unique to this run (mkdtemp), removed after it
    return shm / f"{prefix.parent.name}-microcache" if shm.is_dir() else prefix / "microcache"


def _without_head(auth: str) -> str:
    """authsvc-auth.conf without `proxy_method HEAD;`: nginx's default GET subrequest."""
    lines = auth.splitlines(keepends=True)
    head = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*proxy_method HEAD;\s*", line)]
    if len(head) != 1:
        raise RuntimeError(f"bench: expected one `proxy_method HEAD;` line, found {len(head)}")
    del lines[head[0]]
    return "".join(lines)


def _derived(prefix: Path, ports: dict[str, int], shipped: Path) -> dict[str, Path]:
    """Write the files derived from the shipped ones; their paths by name."""
    upstream = (shipped / "authsvc-upstream.conf").read_text()
    auth = (shipped / "authsvc-auth.conf").read_text()
    protect = (shipped / "authsvc-protect.conf").read_text()
    zone = (shipped / "microcache" / "authsvc-microcache-zone.conf").read_text()
    microcache = (shipped / "microcache" / "authsvc-auth-microcache.conf").read_text()
    src = "authsvc-upstream.conf"
    server = "server 127.0.0.1:9090;"
    tmpfs = "/run/authsvc-microcache "
    texts = {
        "upstream": _replace(upstream, server, f"server 127.0.0.1:{ports['auth']};", src),
        # The same upstream for the mix's instances, under their own names.
        **{
            f"upstream-{name}": _replace(
                _replace(upstream, "upstream authsvc {", f"upstream authsvc_{name} {{", src),
                server,
                f"server 127.0.0.1:{ports[f'auth-{name}']};",
                src,
            )
            for name in ("mix", "w2", "rl")
        },
        "floor-auth": _replace(
            _replace(auth, "location = /_authsvc", "location = /_floor", "authsvc-auth.conf"),
            "http://authsvc/auth",
            "http://floor/auth",
            "authsvc-auth.conf",
        ),
        "floor-protect": _replace(
            protect, "auth_request /_authsvc;", "auth_request /_floor;", "authsvc-protect.conf"
        ),
        "get-auth": _without_head(auth),
        **{
            f"{name}-auth": _replace(
                auth, "http://authsvc/auth", f"http://authsvc_{name}/auth", "authsvc-auth.conf"
            )
            for name in ("mix", "w2", "rl")
        },
        "mix-microcache-auth": _replace(
            microcache,
            "http://authsvc/auth",
            "http://authsvc_mix/auth",
            "authsvc-auth-microcache.conf",
        ),
        # The optional micro-cache (deploy/nginx/microcache/), its zone in the work dir.
        "microcache-zone": _replace(
            zone, tmpfs, f"{microcache_dir(prefix)} ", "authsvc-microcache-zone.conf"
        ),
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = prefix / f"{name}.conf"
        paths[name].write_text(text)
    return paths


def _mix_server(port: int, auth: Path, protect: Path, extra: str = "") -> str:
    """A mix server block: the client address from X-Bench-Client (realip), and allowed
    requests of any method answered 200 by the `bench_ok` server through proxy_pass (a
    `return` here would run before auth_request and skip it)."""
    return f"""  server {{
    listen 127.0.0.1:{port};
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Bench-Client;
    include {auth};
    location / {{
      include {protect};
{extra}      proxy_pass http://bench_ok;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
"""


def write(prefix: Path, ports: dict[str, int], shipped: Path) -> Path:
    """Write nginx.conf (and the static files it serves) under ``prefix``; its path."""
    www = prefix / "www"
    for path in ("api/v1/queries/running", "api/v1/users"):
        (www / path).parent.mkdir(parents=True, exist_ok=True)
        (www / path).write_text("ok\n")
    conf = _derived(prefix, ports, shipped)
    shipped_auth = shipped / "authsvc-auth.conf"
    shipped_protect = shipped / "authsvc-protect.conf"
    microcache_auth = shipped / "microcache" / "authsvc-auth-microcache.conf"
    temp = "".join(
        f"  {k}_temp_path {prefix / k};\n"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    svc_listens = "".join(
        f"    listen 127.0.0.1:{ports[n]};\n"
        for n in ("svc-hit", "svc-deny", "svc-junk", "svc-miss", "svc-ratelimited-instance")
    )
    # The micro-cache's status for the mix, per main request: the shipped auth location
    # logs nothing (access_log off), so the protected location copies the subrequest's
    # $upstream_cache_status (HIT, MISS, EXPIRED) into a variable the main request logs.
    # Buffered, so the log costs this path next to nothing over the other mix paths;
    # read FLUSH_WAIT seconds after a run.
    cache_log = (
        "      auth_request_set $bench_cache $upstream_cache_status;\n"
        f"      access_log {prefix / MICROCACHE_LOG} bench_cache buffer=64k flush=1s;\n"
    )
    mix = (
        _mix_server(ports["svc-mix"], conf["mix-auth"], shipped_protect)
        + _mix_server(ports["floor-mix"], conf["floor-auth"], conf["floor-protect"])
        + _mix_server(ports["svc-mix-w2"], conf["w2-auth"], shipped_protect)
        + _mix_server(
            ports["svc-microcache-mix"], conf["mix-microcache-auth"], shipped_protect, cache_log
        )
    )
    text = f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
events {{ worker_connections 4096; }}
http {{
  access_log off;
  log_format bench_cache '$status $bench_cache';
{temp}  include {conf["upstream"]};
  include {conf["upstream-mix"]};
  include {conf["upstream-w2"]};
  include {conf["upstream-rl"]};
  include {conf["microcache-zone"]};
  upstream floor {{ server 127.0.0.1:{ports["floor-app"]}; keepalive 32; }}
  upstream bench_ok {{ server 127.0.0.1:{ports["ok"]}; keepalive 32; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{ports["ok"]};
    keepalive_requests 1000000;
    location / {{ return 200 "ok\\n"; }}
  }}
  server {{ listen 127.0.0.1:{ports["plain"]}; root {www}; location / {{ }} }}
  server {{
    listen 127.0.0.1:{ports["nginxauth"]}; root {www};
    location / {{ auth_request /_stub; }}
    location = /_stub {{ internal; return 204; }}
  }}
  server {{
    listen 127.0.0.1:{ports["floor"]}; root {www};
    include {conf["floor-auth"]};
    location / {{ auth_request /_floor; }}
  }}
  server {{
{svc_listens}    root {www};
    include {shipped_auth};
    location / {{ include {shipped_protect}; }}
  }}
  server {{
    listen 127.0.0.1:{ports["svc-get"]}; root {www};
    include {conf["get-auth"]};
    location / {{ include {shipped_protect}; }}
  }}
  server {{
    listen 127.0.0.1:{ports["svc-ratelimited-cluster"]}; root {www};
    include {conf["rl-auth"]};
    location / {{ include {shipped_protect}; }}
  }}
  server {{
    listen 127.0.0.1:{ports["svc-microcache"]}; root {www};
    include {microcache_auth};
    location / {{ include {shipped_protect}; }}
  }}
{mix}}}
"""
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(text)
    return conf_path
