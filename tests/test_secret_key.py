"""The HMAC key: created once with mode 0600, stable, overridable from the environment."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from authsvc.rules.tokens import digest
from authsvc.service.secret_key import ENV_VAR, SecretKeyError, load_secret_key
from tests.test_cli import RUN_TIMEOUT, Cli, child_env, lookup, write_config

ENV_KEY = "k" * 32


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestKeyFile:
    def test_created_private_and_stable(self, tmp_path: Path) -> None:
        """First use creates a 0600 file (and its folders); later loads return the same key."""
        path = tmp_path / "var" / "deep" / "authsvc.key"
        first = load_secret_key(path, {})
        assert len(first) >= 32
        assert mode(path) == 0o600
        assert load_secret_key(path, {}) == first
        assert sorted(p.name for p in path.parent.iterdir()) == ["authsvc.key"]  # no temp file

    def test_each_new_file_has_its_own_key(self, tmp_path: Path) -> None:
        """Keys are random, not a constant."""
        assert load_secret_key(tmp_path / "a.key", {}) != load_secret_key(tmp_path / "b.key", {})

    def test_existing_key_is_used(self, tmp_path: Path) -> None:
        """A key written by the operator (hex, surrounding white space) is read as is."""
        path = tmp_path / "authsvc.key"
        path.write_text("  " + "ab" * 32 + "\n\n")
        path.chmod(0o600)
        assert load_secret_key(path, {}) == bytes.fromhex("ab" * 32)

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            pytest.param(b"", "shorter than", id="empty"),
            pytest.param(b"ab" * 31, "shorter than", id="31-bytes"),
            pytest.param(b"zz" * 32, "does not hold a hex key", id="not-hex"),
            pytest.param(b"\xff" * 64, "does not hold a hex key", id="not-ascii"),
            pytest.param(b"ab" * 5000, "does not hold a hex key", id="huge"),
        ],
    )
    def test_garbage_is_refused_and_kept(self, tmp_path: Path, content: bytes, words: str) -> None:
        """A bad file is an error (never silently replaced: tokens depend on it)."""
        path = tmp_path / "authsvc.key"
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(SecretKeyError, match=words):
            load_secret_key(path, {})
        assert path.read_bytes() == content

    def test_unreadable_path(self, tmp_path: Path) -> None:
        """A folder where the key file should be is reported as such."""
        (tmp_path / "authsvc.key").mkdir()
        with pytest.raises(SecretKeyError, match="folder"):
            load_secret_key(tmp_path / "authsvc.key", {})

    def test_impossible_path(self, tmp_path: Path) -> None:
        """A key file under a file instead of a folder is an error naming the path."""
        (tmp_path / "var").write_text("")
        with pytest.raises(SecretKeyError, match=r"var/authsvc\.key: Not a directory"):
            load_secret_key(tmp_path / "var" / "authsvc.key", {})

    @pytest.mark.parametrize(
        ("file_mode", "warned"),
        [
            pytest.param(0o600, False, id="private"),
            pytest.param(0o400, False, id="read-only"),
            pytest.param(0o644, True, id="world-readable"),
            pytest.param(0o640, True, id="group-readable"),
        ],
    )
    def test_readable_by_others_warns(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, file_mode: int, warned: bool
    ) -> None:
        """A key others can read is logged as a warning, and still used."""
        path = tmp_path / "authsvc.key"
        key = load_secret_key(path, {})
        path.chmod(file_mode)
        with caplog.at_level(logging.WARNING, logger="authsvc.secret_key"):
            assert load_secret_key(path, {}) == key
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("readable by others" in m for m in messages) == warned


class TestEnvironment:
    def test_env_overrides_the_file(self, tmp_path: Path) -> None:
        """``AUTHSVC_SECRET_KEY`` wins; the file is neither read nor created."""
        path = tmp_path / "authsvc.key"
        assert load_secret_key(path, {ENV_VAR: ENV_KEY}) == ENV_KEY.encode()
        assert not path.exists()
        path.write_text("garbage")
        assert load_secret_key(path, {ENV_VAR: ENV_KEY}) == ENV_KEY.encode()

    @pytest.mark.parametrize("value", ["", "Q", "Q" * 31])
    def test_short_env_key_is_refused(self, tmp_path: Path, value: str) -> None:
        """A key under 32 characters is an error that does not echo the value."""
        with pytest.raises(SecretKeyError, match=ENV_VAR) as caught:
            load_secret_key(tmp_path / "authsvc.key", {ENV_VAR: value})
        assert value == "" or value not in str(caught.value)
        assert not (tmp_path / "authsvc.key").exists()


class TestConcurrentCreation:
    def test_threads_agree_on_one_key(self, tmp_path: Path) -> None:
        """Many first uses at once yield one key, and none sees a half-written file."""
        for round_ in range(20):
            path = tmp_path / f"round{round_}" / "authsvc.key"
            barrier = threading.Barrier(8)
            results: list[bytes | Exception] = []

            def load(
                path: Path = path,
                barrier: threading.Barrier = barrier,
                results: list[bytes | Exception] = results,
            ) -> None:
                barrier.wait()
                try:
                    results.append(load_secret_key(path, {}))
                except SecretKeyError as error:
                    results.append(error)

            threads = [threading.Thread(target=load) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(set(map(repr, results))) == 1, results
            assert isinstance(results[0], bytes)
            assert load_secret_key(path, {}) == results[0]

    def test_processes_agree_on_one_key(self, tmp_path: Path) -> None:
        """Separate processes (a CLI call and a starting service) agree too."""
        path = tmp_path / "var" / "authsvc.key"
        code = (
            "import sys; from pathlib import Path; from authsvc.service.secret_key import "
            "load_secret_key; print(load_secret_key(Path(sys.argv[1]), {}).hex())"
        )
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=child_env(),
            )
            for _ in range(6)
        ]
        outputs = {process.communicate(timeout=RUN_TIMEOUT)[0].strip() for process in processes}
        assert all(process.returncode == 0 for process in processes)
        assert outputs == {path.read_text().strip()}


class TestThroughTheCli:
    def test_cli_creates_the_key_private_and_reuses_it(self, tmp_path: Path) -> None:
        """The first command creates the 0600 key file; the next ones use the same key."""
        cli = Cli(tmp_path, write_config(tmp_path))
        first = cli.create("first")
        key_file = tmp_path / "authsvc.key"
        assert mode(key_file) == 0o600
        content = key_file.read_bytes()
        cli.create("second")
        assert key_file.read_bytes() == content
        assert lookup(tmp_path, first["token"]) is not None

    def test_env_key_is_used_for_digests(self, tmp_path: Path) -> None:
        """With ``AUTHSVC_SECRET_KEY`` set, the stored digest is keyed by it; no file made."""
        cli = Cli(tmp_path, write_config(tmp_path))
        env = child_env(AUTHSVC_SECRET_KEY=ENV_KEY)
        result = cli.run("token", "create", "--name", "ci", "--permission", "Reader", env=env)
        assert result.status == 0, result.stderr
        assert not (tmp_path / "authsvc.key").exists()
        secret = result.stdout.strip()
        # the digest is in the database file or still in its write-ahead log
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("authsvc.db*"))
        assert digest(ENV_KEY.encode(), secret) in stored

    def test_world_readable_key_warns_on_stderr(self, tmp_path: Path) -> None:
        """The warning reaches the operator of a CLI call, and the command still works."""
        cli = Cli(tmp_path, write_config(tmp_path))
        cli.create("ci")
        (tmp_path / "authsvc.key").chmod(0o644)
        result = cli.ok("token", "list")
        assert "readable by others" in result.stderr
