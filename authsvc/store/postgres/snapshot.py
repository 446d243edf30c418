"""Snapshots of the PostgreSQL store (:mod:`authsvc.store.snapshots`), with the server's
own tools: ``pg_dump --format=custom`` of the authsvc tables, ``pg_restore`` to put them back.

Consistency: one connection opens a read-only REPEATABLE READ transaction, exports its
snapshot and reads the facts (token count, key check value, schema version) in it; pg_dump
then dumps exactly that snapshot (``--snapshot``) while the transaction stays open. Writes
go on meanwhile and are simply not in the dump.

Only the authsvc tables of the store's schema (the first of its ``search_path``) are
dumped, schema-qualified: a database shared with other applications keeps the rest to
itself. The dump goes back into the schema of the same name, so a restore refuses a store
configured on another schema.

Credentials reach the tools in ``PG*`` environment variables built from the store URL,
never on a command line (where every user of the host could read them in ``ps``); any
password in a tool's message is blanked out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from authsvc.store import KEY_CHECK, RestoreUnfinished
from authsvc.store.postgres import migrations
from authsvc.store.postgres.driver import OUTAGES, Connection
from authsvc.store.postgres.pool import PgPool
from authsvc.store.postgres.serving import (
    hold_for_restore,
    mark_restoring,
    restore_began,
    unmark_restoring,
)
from authsvc.store.postgres.usage import read_meta
from authsvc.store.snapshots import Snapshot, SnapshotError, SnapshotRefused

SNAPSHOT_FILE = "authsvc.pgdump"
#: Every table of the authsvc schema (version 3), in no particular order.
TABLES = ("authsvc_schema", "tokens", "changes", "change_counter", "authsvc_meta", "token_usage")
#: URL query parameters libpq's tools take from the environment (the rest are server
#: settings such as ``search_path``, which the tools do not need: names are qualified).
_QUERY_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "passfile": "PGPASSFILE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}
_CONNECT_TIMEOUT = "10"  # seconds; libpq's default is to wait forever


def tool_environment(url: str, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``base`` with the ``PG*`` variables that make libpq's tools reach the store ``url``
    (the caller's own ``PG*`` variables fill in what the URL leaves out, as they do for
    the store's driver)."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    found: dict[str, str] = {}
    if user:
        found["PGUSER"] = unquote(user)
    if has_password:
        found["PGPASSWORD"] = unquote(password)
    if hosts:
        pairs = [_host_and_port(each) for each in hosts.split(",")]
        if any(host for host, _ in pairs):
            found["PGHOST"] = ",".join(host for host, _ in pairs)
        if any(port for _, port in pairs):
            found["PGPORT"] = ",".join(port or "5432" for _, port in pairs)
    if parts.path.strip("/"):
        found["PGDATABASE"] = unquote(parts.path.strip("/"))
    for name, value in parse_qsl(parts.query):
        if name in _QUERY_ENV:
            found[_QUERY_ENV[name]] = value
    environment = {**base, **found}
    environment.setdefault("PGCONNECT_TIMEOUT", _CONNECT_TIMEOUT)
    return environment


def _host_and_port(text: str) -> tuple[str, str]:
    """``host:port``, ``[v6]:port`` or ``host`` → (host, port or "")."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return unquote(host), rest.removeprefix(":")
    host, _, port = text.partition(":")
    return unquote(host), port


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (and a literal pg_dump pattern)."""
    return '"' + name.replace('"', '""') + '"'


class PostgresSnapshots:
    """Snapshots of the PostgreSQL store at ``url``."""

    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self._url = url
        self._db = PgPool(url, max_size=1, connect_timeout=5.0, command_timeout=30.0)

    async def take(self, folder: Path) -> Snapshot:
        """pg_dump the authsvc tables, as of one snapshot, into ``folder``."""
        pg_dump = _tool("pg_dump")
        target = folder / SNAPSHOT_FILE
        # pg_dump would create the file with the umask's mode; it keeps this one
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = await self._connect()
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                exported = str(await conn.fetchval("SELECT pg_export_snapshot()"))
                schema, tables = await _authsvc_tables(conn)
                if "tokens" not in tables:
                    raise SnapshotError(f"there is no token store in {self._db.name} to back up")
                began = await restore_began(conn)  # in this snapshot: exact
                if began is not None:
                    raise RestoreUnfinished(self._db.name, began)
                count = int(str(await conn.fetchval("SELECT count(*) FROM tokens")))
                key_check = await read_meta(conn, KEY_CHECK) if "authsvc_meta" in tables else None
                version = await migrations.schema_version(conn)
                arguments = [
                    *("--format=custom", "--no-owner", "--no-privileges"),
                    f"--snapshot={exported}",
                    f"--file={target}",
                    *(f"--table={_ident(schema)}.{_ident(table)}" for table in tables),
                ]
                await self._run(pg_dump, arguments)
        except OUTAGES as error:
            raise SnapshotError(
                f"cannot back up {self._db.name}: {self._db.scrub(error)}"
            ) from None
        finally:
            await conn.close()
        return Snapshot(
            target.name, count, key_check, version, {"schema": schema, "tables": list(tables)}
        )

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the schema's serving lock exclusively (:mod:`~authsvc.store.postgres.serving`):
        refused while an instance serves it; instances starting meanwhile wait."""
        conn = await self._connect()
        try:
            try:
                schema = await conn.fetchval("SELECT coalesce(current_schema(), '')")
                await hold_for_restore(conn, str(schema), self._db.name)
            except OUTAGES as error:
                raise self._cannot_restore(error) from None
            yield
        finally:
            await conn.close()

    async def mark_restoring(self, began: str) -> None:
        """Mark the schema as restoring (:mod:`~authsvc.store.postgres.serving`), once
        pg_restore is known to be there (a missing tool changes nothing)."""
        _tool("pg_restore")
        await self._on_own_connection(lambda conn: mark_restoring(conn, began))

    async def unmark_restoring(self) -> None:
        """Drop the restoring mark."""
        await self._on_own_connection(unmark_restoring)

    async def _on_own_connection(self, job: Callable[[Connection], Awaitable[None]]) -> None:
        conn = await self._connect()
        try:
            await job(conn)
        except OUTAGES as error:
            raise self._cannot_restore(error) from None
        finally:
            await conn.close()

    async def put_back(self, folder: Path, snapshot: Snapshot) -> None:
        """pg_restore the dump into the store's schema, in one transaction."""
        pg_restore = _tool("pg_restore")
        dumped = [str(each) for each in _as_list(snapshot.facts.get("tables"))]
        wanted = str(snapshot.facts.get("schema", ""))
        conn = await self._connect()
        try:
            schema, present = await _authsvc_tables(conn)
            if schema != wanted:
                raise SnapshotRefused(
                    f"the backup holds the tables of the PostgreSQL schema {wanted!r}, but the "
                    f"store in {self._db.name} uses {repr(schema) if schema else 'no schema'}: "
                    "restore into a database whose search_path selects that schema"
                )
            # tables the dump does not hold (a newer schema's) would survive --clean
            extra = [table for table in present if table not in dumped]
            if extra:
                names = ", ".join(f"{_ident(schema)}.{_ident(t)}" for t in extra)
                await conn.execute(f"DROP TABLE IF EXISTS {names} CASCADE")
            arguments = [
                *("--clean", "--if-exists", "--single-transaction", "--exit-on-error"),
                *("--no-owner", "--no-privileges"),
                str(folder / snapshot.file),
            ]
            await self._run(pg_restore, arguments)
        except OUTAGES as error:
            raise self._cannot_restore(error) from None
        finally:
            await conn.close()

    def _cannot_restore(self, error: BaseException) -> SnapshotError:
        return SnapshotError(f"cannot restore into {self._db.name}: {self._db.scrub(error)}")

    async def _connect(self) -> Connection:
        try:
            return await self._db.connect()
        except OUTAGES as error:
            raise SnapshotError(
                f"cannot connect to the token store {self._db.name}: {self._db.scrub(error)}"
            ) from None

    async def _run(self, tool: str, arguments: Sequence[str]) -> None:
        """Run ``tool`` against the store's database; SnapshotError with its message."""
        environment = tool_environment(self._url)
        process = await asyncio.create_subprocess_exec(
            tool,
            f"--dbname={_conninfo(environment)}",
            *arguments,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await process.communicate()
        if process.returncode != 0:
            said = self._db.scrub(Exception(errors.decode(errors="replace").strip()))
            name = Path(tool).name
            raise SnapshotError(f"{name} failed (exit status {process.returncode}): {said}")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SnapshotError(
            f"{name} is not installed: it comes with the PostgreSQL client tools (Debian and "
            f"Ubuntu: apt-get install postgresql-client), of the server's major version or newer"
        )
    return found


def _conninfo(environment: Mapping[str, str]) -> str:
    """The tools' ``--dbname``: a libpq conninfo naming the database (pg_restore connects
    only when given one) and the connect timeout; credentials stay in ``PG*`` variables."""
    fields = {"connect_timeout": environment["PGCONNECT_TIMEOUT"]}
    if environment.get("PGDATABASE"):
        fields["dbname"] = environment["PGDATABASE"]
    return " ".join(f"{name}={_quoted(value)}" for name, value in fields.items())


def _quoted(value: str) -> str:
    """``value`` as a libpq conninfo value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


async def _authsvc_tables(conn: Connection) -> tuple[str, list[str]]:
    """(the connection's current schema, the authsvc tables in it)."""
    schema = await conn.fetchval("SELECT current_schema()")
    if not isinstance(schema, str):
        return "", []
    rows = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relname = ANY($2::text[])"
        " AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
        schema,
        list(TABLES),
    )
    present = {str(row["relname"]) for row in rows}
    return schema, [table for table in TABLES if table in present]
