"""Reading YAML for the configuration: a node walker that reports every problem with
its file, dotted key and line, and never constructs tagged objects."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from authsvc.config.errors import ConfigError

DECIMAL = re.compile(r"[1-9][0-9_]*", re.ASCII)
YAML_TAG = "tag:yaml.org,2002:"
STR, INT, BOOL, NULL = (YAML_TAG + t for t in ("str", "int", "bool", "null"))
PLAIN_TAGS = frozenset(
    {STR, INT, BOOL, NULL, YAML_TAG + "float", YAML_TAG + "map", YAML_TAG + "seq"}
)
EMPTY_FILE = (
    "the file is empty; it must define at least trusted_proxies, admin_trusted_proxies, "
    "permissions, ip_filters and security_policy"
)
BOOLS = {"yes": True, "true": True, "on": True, "no": False, "false": False, "off": False}

T = TypeVar("T")
Fields = dict[str, tuple[Node, Node]]  # name → (key node, value node)


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def is_null(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL


def describe_node(node: Node) -> str:
    """How a wrong value is shown in an error message."""
    if isinstance(node, (MappingNode, SequenceNode)):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    if node.tag == NULL:
        return "null (an empty value)"
    value = str(node.value)
    if node.tag != STR:
        return value
    return repr(value if len(value) <= 60 else value[:60] + "...")


class Reader:
    """Walks the YAML nodes of one file, collecting one error sentence per problem."""

    def __init__(self, file: str, folder: Path) -> None:
        self.file = file
        self.folder = folder
        self.found: list[tuple[int, str]] = []  # (line or 0, message)

    def error(self, key: str, node: Node | None, sentence: str, line: int = 0) -> None:
        line = line or (line_of(node) if node is not None else 0)
        where = f"line {line}" if line else ""
        location = f"{key} ({where})" if key and where else key or where
        self.found.append((line, f"{self.file}: {location}: {sentence}"))

    @property
    def errors(self) -> list[str]:
        """The messages in the order of the file's lines (those without a line first)."""
        return [message for _, message in sorted(self.found, key=lambda found: found[0])]

    def check(self, node: Node, key: str, kind: type[Node], what: str, tag: str = "") -> bool:
        """Is ``node`` a plain ``kind`` node (with ``tag``)? If not, say so."""
        if node.tag not in PLAIN_TAGS:
            tag = str(node.tag).replace(YAML_TAG, "!!")
            self.error(key, node, f"the YAML tag {tag} is not allowed here; write a plain value")
            return False
        if isinstance(node, kind) and (not tag or node.tag == tag):
            return True
        self.error(key, node, f"must be {what}, not {describe_node(node)}")
        return False

    def mapping(self, node: Node, key: str, what: str, allowed: tuple[str, ...] = ()) -> Fields:
        """The entries of a mapping by name; with ``allowed``, other keys are errors."""
        if not self.check(node, key, MappingNode, what):
            return {}
        fields: Fields = {}
        for name_node, value in node.value:
            name = str(name_node.value)
            sub = f"{key}.{name}" if key else name
            if name_node.tag == YAML_TAG + "merge":
                self.error(sub, name_node, "YAML merge keys are not supported; write keys out")
            elif not isinstance(name_node, ScalarNode) or name_node.tag not in PLAIN_TAGS:
                self.error(key, name_node, "keys must be plain names")
            elif name in fields:
                self.error(
                    sub, name_node, f"is given twice (first on line {line_of(fields[name][0])})"
                )
            elif allowed and name not in allowed:
                self.error(sub, name_node, f"unknown key; expected one of: {', '.join(allowed)}")
            else:
                fields[name] = (name_node, value)
        return fields

    def section(self, node: Node | None, key: str, allowed: tuple[str, ...]) -> Fields:
        """A section with fixed keys; absent or left empty means all defaults."""
        if node is None or is_null(node):
            return {}
        return self.mapping(node, key, "a mapping of keys to values", allowed)

    def get(
        self,
        fields: Fields,
        key: str,
        what: str,
        parse: Callable[[str], T],
        default: T,
        *,
        tag: str = STR,
    ) -> T:
        """Field ``key`` (dotted; its last part names the field) parsed by ``parse``.

        ``default`` when absent, or when wrong (which is reported).
        """
        name = key.rpartition(".")[2]
        if name not in fields:
            return default
        node = fields[name][1]
        if not self.check(node, key, ScalarNode, what, tag):
            return default
        try:
            return parse(str(node.value))
        except ValueError as error:
            self.error(key, node, str(error))
            return default


def parse_bool(text: str) -> bool:
    value = BOOLS.get(text.lower())
    if value is None:  # only with an explicit !!bool tag on something else
        raise ValueError(f"must be true or false, not {text!r}")
    return value


def parse_count(text: str) -> int:
    if DECIMAL.fullmatch(text) is None:
        raise ValueError(f"must be a whole number of at least 1 in decimal digits, not {text}")
    return int(text)


def parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or text.startswith("0") or int(text) > 65535:
        raise ValueError(f"the port {text!r} must be a number from 1 to 65535")
    return int(text)


def compose(text: str, file: str) -> Node:
    """The YAML node tree; ConfigError for invalid YAML or an empty document."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = "; ".join(part for part in (error.context, error.problem) if part)
        raise ConfigError([f"{file}: {where}invalid YAML: {problem}"]) from None
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        code = int(error.character)  # the code point; we always pass text, never bytes
        raise ConfigError(
            [f"{file}: line {line}: invalid YAML: {error.reason} (U+{code:04X})"]
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError([f"{file}: invalid YAML: {error}"]) from None
    except RecursionError:  # the YAML parser recurses per nesting level
        raise ConfigError([f"{file}: invalid YAML: nested too deeply"]) from None
    if root is None:
        raise ConfigError([f"{file}: {EMPTY_FILE}"])
    if not text.endswith("\n"):
        # An unfinished write ends mid-line (a CIDR /16 cut to /1 is valid and wider):
        # a complete file ends with a line break, as every editor writes it.
        line = text.count("\n") + 1
        raise ConfigError(
            [
                f"{file}: line {line}: the file does not end with a line break; it may"
                " have been cut short by an unfinished write (add a newline at the end)"
            ]
        )
    return root
