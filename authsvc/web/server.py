"""``authsvc serve``: both listeners on one event loop, with a clean SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Coroutine

from aiohttp import web

from authsvc.config import Config, ListenAddress
from authsvc.service.runtime import Runtime
from authsvc.service.workers import inherited_sockets
from authsvc.web.app import create_admin_app
from authsvc.web.auth import create_auth_server
from authsvc.web.protocol import QuietAppRunner

log = logging.getLogger("authsvc.server")
SHUTDOWN_TIMEOUT = 10.0  # seconds to finish requests in flight after SIGTERM


def _site(
    runner: web.BaseRunner, address: ListenAddress, inherited: socket.socket | None
) -> web.BaseSite:
    if inherited is not None:  # a worker of `serve --workers N`: the parent bound it
        return web.SockSite(runner, inherited)
    if address.unix_path is not None:
        return web.UnixSite(runner, address.unix_path)
    return web.TCPSite(runner, address.host, address.port, reuse_address=True)


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT: stop accepting, finish requests, close the store."""
    runtime = await Runtime.open(config)
    feed = runtime.change_feed()
    reloader = runtime.reloader(config.path)
    gauges = runtime.token_gauges()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reloader.reload, "SIGHUP")
    runners: list[web.BaseRunner] = []
    try:
        # before the cache fills; it may wait (a restore running on a PostgreSQL store),
        # and SIGTERM must still stop the process then
        if not await _unless_stopped(feed.start(), stop):
            return
        inherited = inherited_sockets() or (None, None)
        listeners: tuple[tuple[web.BaseRunner, ListenAddress], ...] = (
            (
                web.ServerRunner(create_auth_server(runtime), shutdown_timeout=SHUTDOWN_TIMEOUT),
                config.listen.auth,
            ),
            (
                QuietAppRunner(create_admin_app(runtime), shutdown_timeout=SHUTDOWN_TIMEOUT),
                config.listen.admin,
            ),
        )
        for (runner, address), sock in zip(listeners, inherited, strict=True):
            await runner.setup()
            runners.append(runner)
            await _site(runner, address, sock).start()
        runtime.usage.start()
        runtime.limiter.start()  # stopped by runtime.close()
        reloader.start()
        gauges.start()
        log.info(
            "authsvc serving: auth on %s, admin on %s, store %s",
            config.listen.auth.text,
            config.listen.admin.text,
            config.store.split("://", 1)[0],
        )
        await stop.wait()
        log.info("stopping: finishing requests in flight")
    finally:
        await gauges.stop()
        await reloader.stop()
        await feed.stop()
        for started in reversed(runners):
            await started.cleanup()
        await runtime.close()
        log.info("stopped")


async def _unless_stopped(work: Coroutine[object, object, None], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first, which cancels it; whether it finished."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        stopped = not task.done()
        if stopped:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # stopping anyway: say what it was doing, then go on
                log.exception("while waiting to serve")
    if stopped:
        log.info("stopped before serving")
        return False
    task.result()  # its error, if it failed
    return True


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): measured faster on the hot path
    (docs/performance.md); the standard loop elsewhere."""
    try:
        import uvloop  # noqa: PLC0415 - optional: not every platform has it
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_server(config: Config) -> None:
    """Serve until SIGTERM/SIGINT on the fastest available event loop."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(config))
