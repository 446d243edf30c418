"""The configuration in force, swapped whole by a reload."""

from __future__ import annotations

from authsvc.config import Config


class LiveConfig:
    """Holds the current :class:`Config`. Readers take ``current`` once per request and
    keep using that object, so a reload never shows them a mix of old and new."""

    def __init__(self, config: Config) -> None:
        self.current = config
        self.last_error: str | None = None  # the last failed reload, shown by /readyz
