"""``authsvc serve``: both listeners on one event loop, with a clean SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from authsvc.config import Config, ListenAddress
from authsvc.reload import ConfigReloader
from authsvc.runtime import Runtime
from authsvc.web.app import create_admin_app, create_auth_app

log = logging.getLogger("authsvc.server")
SHUTDOWN_TIMEOUT = 10.0  # seconds to finish requests in flight after SIGTERM


def _site(runner: web.AppRunner, address: ListenAddress) -> web.BaseSite:
    if address.unix_path is not None:
        return web.UnixSite(runner, address.unix_path)
    return web.TCPSite(runner, address.host, address.port, reuse_address=True)


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT: stop accepting, finish requests, close the store."""
    runtime = await Runtime.open(config)
    reloader = ConfigReloader(runtime, config.path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reloader.reload, "SIGHUP")
    runners: list[web.AppRunner] = []
    try:
        auth_runner = web.AppRunner(
            create_auth_app(runtime),
            access_log=None,  # the hot path logs nothing per request; counts go to /metrics
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        admin_runner = web.AppRunner(
            create_admin_app(runtime), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        for runner, address in (
            (auth_runner, config.listen.auth),
            (admin_runner, config.listen.admin),
        ):
            await runner.setup()
            runners.append(runner)
            await _site(runner, address).start()
        runtime.usage.start()
        reloader.start()
        log.info(
            "authsvc serving: auth on %s, admin on %s, store %s",
            config.listen.auth.text,
            config.listen.admin.text,
            config.store.split("://", 1)[0],
        )
        await stop.wait()
        log.info("stopping: finishing requests in flight")
    finally:
        await reloader.stop()
        for runner in reversed(runners):
            await runner.cleanup()
        await runtime.close()
        log.info("stopped")
