"""Every command that opens the store refuses a key that is not the store's, and a store
that holds tokens without its key: exit status 2 (the systemd unit's
RestartPreventExitStatus), one sentence naming the key file, no key file created (SPEC §13).
Run as the real program, on both stores."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.processes import free_port
from tests.test_cli import RUN_TIMEOUT, Cli, Result, child_env, write_config

OTHER_KEY = "cd" * 32 + "\n"

#: Every command that opens the store, with the arguments it needs ({id}: a token's id).
COMMANDS = {
    "token list": ("token", "list"),
    "token create": ("token", "create", "--name", "late", "--permission", "Reader"),
    "token show": ("token", "show", "{id}"),
    "token delete": ("token", "delete", "{id}"),
    "explain": ("explain", "{id}", "GET", "/api/v1/items"),
    "migrate": ("migrate",),
    "config check": ("config", "check"),
    "backup": ("backup", "{folder}/backup"),
    "serve": ("serve",),
    "serve --workers 2": ("serve", "--workers", "2"),
}


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    """The CLI on the test's store, listening (if it ever got that far) on free ports."""
    listen = {"auth": f"127.0.0.1:{free_port()}", "admin": f"127.0.0.1:{free_port()}"}
    return Cli(tmp_path, write_config(tmp_path, store=store_url, listen=listen))


def run_all(cli: Cli, token_id: str) -> dict[str, Result]:
    """Every command of COMMANDS, run at once (each is refused before it changes
    anything, so they cannot disturb one another)."""

    def run(command: str) -> Result:
        return cli.run(*(a.format(id=token_id, folder=cli.folder) for a in COMMANDS[command]))

    with ThreadPoolExecutor(max_workers=len(COMMANDS)) as pool:
        return dict(zip(COMMANDS, pool.map(run, COMMANDS), strict=True))


def assert_refused(results: dict[str, Result], *words: str) -> None:
    """Each exited 2, without a traceback, with a line on stderr holding ``words`` (serve:
    its ERROR log line)."""
    for command, result in results.items():
        assert result.status == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr, command
        lines = [line for line in result.stderr.splitlines() if all(w in line for w in words)]
        assert lines, (command, result.stderr)
        if command.startswith("serve"):
            assert " ERROR " in lines[0], (command, result.stderr)


def test_every_command_refuses_another_key(cli: Cli) -> None:
    """The key file replaced by another key: refused, nothing changed."""
    token = cli.create("made under the first key")
    key_file = cli.folder / "authsvc.key"
    key_file.write_text(OTHER_KEY)
    assert_refused(run_all(cli, token["id"]), "another key", str(key_file))
    assert key_file.read_text() == OTHER_KEY
    assert not (cli.folder / "backup").exists()
    assert "late" not in cli.folder.joinpath("audit.log").read_text()


def test_every_command_refuses_to_run_without_the_key(cli: Cli) -> None:
    """The key file gone from a store that holds tokens: refused, and no key is made."""
    token = cli.create("made under the lost key")
    key_file = cli.folder / "authsvc.key"
    key_file.unlink()
    assert_refused(run_all(cli, token["id"]), "missing", str(key_file))
    assert not key_file.exists()
    assert not (cli.folder / "backup").exists()


def test_a_worker_that_refuses_stops_the_supervisor(cli: Cli) -> None:
    """A worker exiting 2 is not restarted: the supervisor stops every worker and exits 2
    itself (without this, it would restart the worker every second, forever)."""
    cli.create("made under the first key")
    (cli.folder / "authsvc.key").write_text(OTHER_KEY)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from authsvc.config.load import load_config\n"
        "from authsvc.service.workers import Supervisor\n"
        "sys.exit(Supervisor(load_config(Path(sys.argv[1])), 2).run())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(cli.config)],
        cwd=cli.folder,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "refused to start" in done.stderr
