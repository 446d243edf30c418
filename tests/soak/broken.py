"""A deliberately broken authsvc, to show that the soak catches each kind of failure it
looks for. :func:`inject` writes a ``sitecustomize`` that calls :func:`install` in every
Python process started with that folder on ``PYTHONPATH``; :func:`install` wraps the
decision of ``/auth`` so that the service:

- allows every ``GET`` that a token's permissions do not grant (a wrong 200);
- crashes on ``/api/v1/other`` (the handler answers 503 ``internal_error``);
- keeps 128 KiB for every decision it makes (a leak).

Never loaded by the suite itself: only by the server processes of the soak's own test.
"""

from __future__ import annotations

from pathlib import Path

from authsvc.config import Config
from authsvc.rules.decision import Reason
from authsvc.rules.request import Described
from authsvc.rules.tokens import TokenRecord

WRONGLY_ALLOWED = "GET"
CRASHES = "/api/v1/other"
LEAK_BYTES = 128 * 1024
_kept: list[bytes] = []


def install() -> None:
    """Replace the decision the /auth handler uses with the broken one."""
    from authsvc.rules.decision import decide  # noqa: PLC0415 - only in the broken server
    from authsvc.web import auth  # noqa: PLC0415

    def broken(record: TokenRecord, described: Described, config: Config, now: float) -> Reason:
        if described.path == CRASHES:
            raise RuntimeError("a deliberate bug of the soak's broken server")
        _kept.append(b"x" * LEAK_BYTES)  # written, so resident
        reason = decide(record, described, config, now)
        if reason is Reason.PERMISSION_DENIED and described.method == WRONGLY_ALLOWED:
            return Reason.OK
        return reason

    setattr(auth, "decide", broken)  # noqa: B010 - the name the handler looks up at call time


def inject(folder: Path) -> Path:
    """Write the ``sitecustomize`` into ``folder``; put the folder on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text("from tests.soak.broken import install\n\ninstall()\n")
    return folder
