"""The soak's configuration reloads: the next variant written over the file (atomically,
as editors that save by rename do), SIGHUP, and the timeline told when the new
configuration may have taken over: from the rewrite until the service's metrics show a
newer successful load (set once it is in force), or, if they never do, ``settle`` after
the signal.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass, field

import yaml

from authsvc.config.load import parse_config
from tests.processes import AuthsvcServer
from tests.soak.admin import AdminApi
from tests.soak.oracle import Timeline
from tests.soak.workload import Knobs, document, next_knobs

RELOADED = "authsvc_config_last_reload_success_timestamp_seconds"


@dataclass
class Pace:
    """How often the soak changes things (seconds)."""

    step: float = 0.25  # one token change through the admin API
    cli: float = 3.0  # one through the CLI (a process start: costly on a small machine)
    reload: float = 1.5  # one configuration reload
    cli_settle: float = 1.5  # SPEC §6's 1 s, plus the time to act on it


@dataclass
class Reloader:
    """Writes the configuration file and has the service reload it."""

    server: AuthsvcServer
    api: AdminApi
    timeline: Timeline
    rng: random.Random
    store: str
    settle: float
    knobs: Knobs = field(default_factory=Knobs)
    reloads: int = 0
    unconfirmed: int = 0  # reloads the metrics never confirmed: ``settle`` was assumed

    def write(self) -> float:
        """Write the file for the current knobs (atomically: a rename); when it started."""
        started = time.time()
        path = self.server.config
        ports = (self.server.auth_port, self.server.admin_port)
        text = yaml.safe_dump(document(self.knobs, self.server.workdir, self.store, ports))
        temporary = path.with_name(f".{path.name}.soak")
        temporary.write_text(text)
        os.replace(temporary, path)
        return started

    def written(self, started: float, ended: float) -> None:
        """Record the file as written, parsed as the service parses it."""
        text = self.server.config.read_text()
        self.timeline.configure(started, ended, parse_config(text, self.server.config))

    async def reload(self) -> None:
        """Next variant, rewrite, SIGHUP; wait until the service says it reloaded."""
        before = await self.api.metric(RELOADED)
        self.knobs = next_knobs(self.knobs, self.reloads, self.rng)
        started = self.write()
        self.server.send(signal.SIGHUP)
        sent = time.time()
        self.reloads += 1
        ended = sent + self.settle
        while time.time() < sent + self.settle:
            mark = await self.api.metric(RELOADED)
            if before is not None and mark is not None and mark != before:
                ended = time.time()
                break
            await asyncio.sleep(0.02)
        else:
            self.unconfirmed += 1
        self.written(started, ended)
