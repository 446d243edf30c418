"""The one error every configuration problem is reported through."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is invalid. ``errors`` holds one human sentence per problem,
    each of the form ``<file>: <key>[ (line N)]: <what is wrong>``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors
