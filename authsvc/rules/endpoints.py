"""Endpoint templates (``METHOD PATH``) and the fast matcher built from them.

A template is an upper-case HTTP method (or ``*`` for any) and a path. The path is
compared segment by segment with a canonical request path: ``{name}`` matches exactly
one non-empty segment, a last segment ``{name...}`` matches one or more remaining
segments (the first of them non-empty), everything else matches literally and
case-sensitively, and a trailing slash is significant.

Template paths are held to the shape that request canonicalisation produces, so that a
template which could never match is refused when the configuration is loaded instead of
silently granting nothing: no query or fragment, no empty, ``.`` or ``..`` segments, and
only the characters ``A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , = : @`` in literal segments
(no percent-escapes, no ``;`` or ``\\``, no whitespace or non-ASCII).

Each :class:`PermissionMatcher` compiles its templates once into one segment trie per
method, so matching a request is a few dictionary lookups.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

ANY_METHOD = "*"
_METHOD = re.compile(r"[A-Z][A-Z0-9_-]*", re.ASCII)
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()*+,=:@-]*", re.ASCII)
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}", re.ASCII)
_MAX_LENGTH = 2048


class TemplateError(ValueError):
    """An endpoint template is malformed; the message says what to change."""


class SegmentKind(enum.Enum):
    LITERAL = "literal"  # matches itself exactly
    VARIABLE = "variable"  # {name}: one non-empty segment
    REST = "rest"  # {name...}: one or more remaining segments, only last


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    value: str  # the literal text, or the variable's name


@dataclass(frozen=True, slots=True)
class EndpointTemplate:
    """One compiled ``METHOD PATH`` template; ``text`` is exactly as written."""

    text: str
    method: str
    path: str
    segments: tuple[Segment, ...]


def split_path(path: str) -> tuple[str, ...]:
    """Segments of a canonical path: ``"/a/b/"`` → ``("a", "b", "")``, ``"/"`` → ``("",)``."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not a path: it must start with '/'")
    return tuple(path[1:].split("/"))


def _compile_segment(raw: str, last: bool, text: str) -> Segment:
    if raw == "":
        if last:  # a trailing slash: the request path must end with "/" too
            return Segment(SegmentKind.LITERAL, "")
        raise TemplateError(f"{text!r} has an empty path segment ('//')")
    if raw in (".", ".."):
        raise TemplateError(f"{text!r} has a {raw!r} segment; write the path without it")
    if "{" in raw or "}" in raw:
        match = _VARIABLE.fullmatch(raw)
        if match is None:
            raise TemplateError(
                f"{text!r}: segment {raw!r} is malformed; a variable is a whole segment"
                " written {name} or, as the last segment, {name...}"
            )
        name, rest = match.groups()
        if rest is None:
            return Segment(SegmentKind.VARIABLE, name)
        if not last:
            raise TemplateError(f"{text!r}: {{{name}...}} is only allowed as the last segment")
        return Segment(SegmentKind.REST, name)
    if _LITERAL.fullmatch(raw) is None:
        bad = next(c for c in raw if _LITERAL.fullmatch(c) is None)
        raise TemplateError(
            f"{text!r}: the character {bad!r} is not allowed in a template path"
            " (no query, fragment, percent-escapes, ';', '\\', spaces or non-ASCII)"
        )
    return Segment(SegmentKind.LITERAL, raw)


def compile_template(text: str) -> EndpointTemplate:
    """Compile ``"METHOD /path"``; raise TemplateError saying what is wrong."""
    value: object = text  # the text comes straight from YAML
    if not isinstance(value, str):
        raise TemplateError(f"{value!r} is not an endpoint template: write 'METHOD /path'")
    if len(text) > _MAX_LENGTH:
        raise TemplateError(f"the template is longer than {_MAX_LENGTH} characters")
    parts = text.split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise TemplateError(
            f"{text!r} is not an endpoint template: write 'METHOD /path', with one space"
            " between them, e.g. 'GET /api/v1/users/{id}'"
        )
    method, path = parts
    if method != ANY_METHOD and _METHOD.fullmatch(method) is None:
        raise TemplateError(
            f"{text!r}: the method must be an upper-case HTTP method such as GET, or '*'"
        )
    if not path.startswith("/"):
        raise TemplateError(f"{text!r}: the path must start with '/'")
    raws = path[1:].split("/")
    segments = tuple(_compile_segment(raw, i == len(raws) - 1, text) for i, raw in enumerate(raws))
    names = [s.value for s in segments if s.kind is not SegmentKind.LITERAL]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TemplateError(f"{text!r}: the variable name {duplicates[0]!r} is used twice")
    return EndpointTemplate(text=text, method=method, path=path, segments=segments)


class _Node:
    """One trie level; mutable only while its :class:`PermissionMatcher` is built."""

    __slots__ = ("end", "literals", "rest", "variable")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.variable: _Node | None = None
        # The first template inserted that ends here, so a match can say which one it was
        # (templates that end at the same node match exactly the same requests).
        self.rest: EndpointTemplate | None = None  # a {name...} template ends here
        self.end: EndpointTemplate | None = None  # a template ends exactly here

    def insert(self, template: EndpointTemplate) -> None:
        node = self
        for segment in template.segments:
            if segment.kind is SegmentKind.REST:
                if node.rest is None:
                    node.rest = template
                return
            if segment.kind is SegmentKind.VARIABLE:
                if node.variable is None:
                    node.variable = _Node()
                node = node.variable
            else:
                node = node.literals.setdefault(segment.value, _Node())
        if node.end is None:
            node.end = template

    def match(self, segments: tuple[str, ...], index: int) -> EndpointTemplate | None:
        # Every trie node sits at one depth, so each is visited at most once per call:
        # the work is bounded by the trie's size, however the templates overlap.
        if index == len(segments):
            return self.end
        segment = segments[index]
        child = self.literals.get(segment)
        if child is not None:
            found = child.match(segments, index + 1)
            if found is not None:
                return found
        if not segment:
            return None  # variables and {name...} need a non-empty segment
        if self.variable is not None:
            found = self.variable.match(segments, index + 1)
            if found is not None:
                return found
        return self.rest


class PermissionMatcher:
    """Does any of a set of templates match a request's method and path segments?

    ``HEAD`` is allowed wherever ``GET`` is, and ``*`` templates match every method.
    """

    __slots__ = ("_any", "_roots", "templates")

    def __init__(self, templates: Sequence[EndpointTemplate]) -> None:
        self.templates: tuple[EndpointTemplate, ...] = tuple(templates)
        methods = {t.method for t in self.templates} | {ANY_METHOD}
        if "GET" in methods:
            methods.add("HEAD")
        # One trie per method, each already holding that method's share of the "*"
        # templates, so a lookup walks exactly one trie.
        roots = {method: _Node() for method in methods}
        for template in self.templates:
            if template.method == ANY_METHOD:
                targets: Sequence[str] = tuple(roots)
            elif template.method == "GET":
                targets = ("GET", "HEAD")
            else:
                targets = (template.method,)
            for method in targets:
                roots[method].insert(template)
        self._any = roots.pop(ANY_METHOD)
        self._roots = roots

    def first_match(self, method: str, segments: tuple[str, ...]) -> EndpointTemplate | None:
        """A template that matches ``method`` and the canonical path ``segments`` (as
        returned by :func:`split_path`), or None. At each segment a literal is tried
        before a ``{name}``, and that before a ``{name...}``: of several matching
        templates, the one most literal from the left is reported."""
        return self._roots.get(method, self._any).match(segments, 0)

    def matches(self, method: str, segments: tuple[str, ...]) -> bool:
        """True if some template matches ``method`` and the canonical path ``segments``."""
        return self.first_match(method, segments) is not None

    def __repr__(self) -> str:
        return f"PermissionMatcher({[t.text for t in self.templates]!r})"
