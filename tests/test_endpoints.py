"""Endpoint templates (``METHOD PATH``) and the permission matcher."""

from __future__ import annotations

import itertools
import re

import pytest

from authsvc.rules.endpoints import (
    EndpointTemplate,
    PermissionMatcher,
    SegmentKind,
    TemplateError,
    compile_template,
    split_path,
)


def matcher(*templates: str) -> PermissionMatcher:
    return PermissionMatcher([compile_template(t) for t in templates])


def reference_match(template: EndpointTemplate, method: str, path: str) -> bool:
    """The rules of SPEC §1 written as plainly as possible, one template at a time."""
    head_as_get = method == "HEAD" and template.method == "GET"
    if template.method not in ("*", method) and not head_as_get:
        return False
    wanted = [(s.kind, s.value) for s in template.segments]
    got = list(split_path(path))
    for position, (kind, value) in enumerate(wanted):
        if kind is SegmentKind.REST:
            return len(got) > position and got[position] != ""
        if position >= len(got):
            return False
        if kind is SegmentKind.VARIABLE and got[position] == "":
            return False
        if kind is SegmentKind.LITERAL and got[position] != value:
            return False
    return len(got) == len(wanted)


class TestCompileTemplate:
    def test_parts(self) -> None:
        """A template keeps its text as written and splits into typed segments."""
        template = compile_template("GET /api/v1/users/{id}/files/{path...}")
        assert template.text == "GET /api/v1/users/{id}/files/{path...}"
        assert template.method == "GET"
        assert template.path == "/api/v1/users/{id}/files/{path...}"
        assert [s.kind for s in template.segments] == [
            SegmentKind.LITERAL,
            SegmentKind.LITERAL,
            SegmentKind.LITERAL,
            SegmentKind.VARIABLE,
            SegmentKind.LITERAL,
            SegmentKind.REST,
        ]
        assert [s.value for s in template.segments] == ["api", "v1", "users", "id", "files", "path"]

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("GET /", id="root"),
            pytest.param("* /api/v1/anything", id="any method"),
            pytest.param("DELETE /api/v1/users/{id}", id="variable"),
            pytest.param("GET /api/v1/files/{path...}", id="rest"),
            pytest.param("GET /api/v1/users/", id="trailing slash"),
            pytest.param("PROPFIND /dav/{path...}", id="extension method"),
            pytest.param("M-SEARCH /upnp", id="method with hyphen"),
            pytest.param("GET /a/v1.2/~me/x-y_z/a:b@c/!$&'()*+,=", id="allowed punctuation"),
            pytest.param("GET /a/.../b", id="three dots are literal"),
            pytest.param("GET /{x_1}", id="underscore and digit in name"),
        ],
    )
    def test_valid(self, text: str) -> None:
        """Templates of the documented forms compile and keep their text."""
        assert compile_template(text).text == text

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            pytest.param("get /api", "upper-case", id="lower-case method"),
            pytest.param("Get /api", "upper-case", id="mixed-case method"),
            pytest.param("GET", "METHOD /path", id="no path"),
            pytest.param("/api/v1", "METHOD /path", id="no method"),
            pytest.param("", "METHOD /path", id="empty"),
            pytest.param("GET  /api", "METHOD /path", id="two spaces"),
            pytest.param("GET\t/api", "METHOD /path", id="tab separator"),
            pytest.param(" GET /api", "METHOD /path", id="leading space"),
            pytest.param("GET /api ", "METHOD /path", id="trailing space"),
            pytest.param("GET /a b", "METHOD /path", id="space in path"),
            pytest.param("GET api/v1", "must start with '/'", id="relative path"),
            pytest.param("GET /api?x=1", "'?'", id="query"),
            pytest.param("GET /api#top", "'#'", id="fragment"),
            pytest.param("GET /a//b", "empty path segment", id="double slash"),
            pytest.param("GET //", "empty path segment", id="root double slash"),
            pytest.param("GET /a/./b", "'.' segment", id="dot segment"),
            pytest.param("GET /a/../b", "'..' segment", id="dot-dot segment"),
            pytest.param("GET /a/..", "'..' segment", id="trailing dot-dot"),
            pytest.param("GET /a%2Fb", "'%'", id="percent escape"),
            pytest.param("GET /a;b", "';'", id="semicolon"),
            pytest.param("GET /a\\b", "'\\\\'", id="backslash"),
            pytest.param("GET /a\nb", "'\\n'", id="newline"),
            pytest.param("GET /caf\u00e9", "not allowed", id="non-ASCII"),
            pytest.param("GET /{id", "malformed", id="unclosed brace"),
            pytest.param("GET /id}", "malformed", id="stray closing brace"),
            pytest.param("GET /{}", "malformed", id="empty name"),
            pytest.param("GET /{1x}", "malformed", id="name starts with digit"),
            pytest.param("GET /v{id}", "malformed", id="part of a segment"),
            pytest.param("GET /{id}.json", "malformed", id="suffix after variable"),
            pytest.param("GET /{a}{b}", "malformed", id="two variables in a segment"),
            pytest.param("GET /{x..}", "malformed", id="two dots"),
            pytest.param("GET /{a}/{a}", "used twice", id="duplicate name"),
            pytest.param("GET /{a}/{a...}", "used twice", id="duplicate with rest"),
            pytest.param("GET /{rest...}/x", "only allowed as the last", id="rest not last"),
            pytest.param("GET /{rest...}/", "only allowed as the last", id="rest then slash"),
            pytest.param("GET /" + "a" * 3000, "longer than", id="too long"),
        ],
    )
    def test_invalid(self, text: str, message: str) -> None:
        """Malformed templates are refused when the configuration is loaded, saying why."""
        with pytest.raises(TemplateError, match=re.escape(message)):
            compile_template(text)

    def test_not_a_string(self) -> None:
        """A YAML number or mapping where a template belongs is a TemplateError."""
        with pytest.raises(TemplateError, match="not an endpoint template"):
            compile_template(42)  # type: ignore[arg-type]  # YAML can give any type


class TestSplitPath:
    @pytest.mark.parametrize(
        ("path", "segments"),
        [
            pytest.param("/", ("",), id="root"),
            pytest.param("/a", ("a",), id="one"),
            pytest.param("/a/b", ("a", "b"), id="two"),
            pytest.param("/a/b/", ("a", "b", ""), id="trailing slash"),
        ],
    )
    def test_segments(self, path: str, segments: tuple[str, ...]) -> None:
        """A canonical path splits into its segments; a trailing slash is an empty one."""
        assert split_path(path) == segments

    def test_relative_path(self) -> None:
        """A path that does not start with '/' is refused."""
        with pytest.raises(ValueError, match="must start with '/'"):
            split_path("a/b")


MATCH_CASES = [
    # (templates, method, path, allowed)
    pytest.param(["GET /admin"], "GET", "/admin", True, id="exact"),
    pytest.param(["GET /admin"], "GET", "/adminx", False, id="prefix is not a match"),
    pytest.param(["GET /admin"], "GET", "/admi", False, id="shorter"),
    pytest.param(["GET /admin"], "GET", "/Admin", False, id="case-sensitive"),
    pytest.param(["GET /admin"], "GET", "/admin/", False, id="extra trailing slash"),
    pytest.param(["GET /admin/"], "GET", "/admin", False, id="missing trailing slash"),
    pytest.param(["GET /admin/"], "GET", "/admin/", True, id="trailing slash template"),
    pytest.param(["GET /admin"], "GET", "/admin/users", False, id="deeper path"),
    pytest.param(["GET /"], "GET", "/", True, id="root"),
    pytest.param(["GET /"], "GET", "/a", False, id="root is not a prefix"),
    pytest.param(["GET /u/{id}"], "GET", "/u/42", True, id="variable"),
    pytest.param(["GET /u/{id}"], "GET", "/u/", False, id="variable not empty"),
    pytest.param(["GET /u/{id}"], "GET", "/u", False, id="variable missing"),
    pytest.param(["GET /u/{id}"], "GET", "/u/42/x", False, id="variable is one segment"),
    pytest.param(["GET /u/{id}"], "GET", "/u/42/", False, id="variable then slash"),
    pytest.param(["GET /u/{id}/"], "GET", "/u/42/", True, id="variable and trailing slash"),
    pytest.param(["GET /u/{id}/x"], "GET", "/u/42/x", True, id="variable in the middle"),
    pytest.param(["GET /f/{p...}"], "GET", "/f/a", True, id="rest one segment"),
    pytest.param(["GET /f/{p...}"], "GET", "/f/a/b/c", True, id="rest many segments"),
    pytest.param(["GET /f/{p...}"], "GET", "/f/a/b/", True, id="rest with trailing slash"),
    pytest.param(["GET /f/{p...}"], "GET", "/f/", False, id="rest needs a segment"),
    pytest.param(["GET /f/{p...}"], "GET", "/f", False, id="rest missing"),
    pytest.param(["GET /f/{p...}"], "GET", "/fx/a", False, id="rest after literal"),
    pytest.param(["GET /x"], "HEAD", "/x", True, id="HEAD where GET is"),
    pytest.param(["HEAD /x"], "GET", "/x", False, id="GET not where only HEAD is"),
    pytest.param(["GET /x"], "POST", "/x", False, id="other method"),
    pytest.param(["GET /x"], "get", "/x", False, id="method case-sensitive"),
    pytest.param(["POST /x"], "HEAD", "/x", False, id="HEAD needs GET"),
    pytest.param(["* /x"], "DELETE", "/x", True, id="any method"),
    pytest.param(["* /x"], "PROPFIND", "/x", True, id="any unknown method"),
    pytest.param(["* /x"], "GET", "/y", False, id="any method, other path"),
    pytest.param(["* /x", "GET /y"], "GET", "/x", True, id="star next to GET"),
    pytest.param(["* /x", "GET /y"], "HEAD", "/x", True, id="star next to HEAD trie"),
    pytest.param(["GET /a/b", "GET /a/{id}"], "GET", "/a/c", True, id="literal fails, var fits"),
    pytest.param(["GET /a/{id}/c", "GET /a/b/d"], "GET", "/a/b/c", True, id="backtrack"),
    pytest.param(["GET /a/b/d", "GET /a/{id}/c"], "GET", "/a/b/e", False, id="no backtrack fit"),
    pytest.param(["GET /a/{p...}", "GET /a/b"], "GET", "/a/b", True, id="rest and literal"),
    pytest.param(["GET /a/{p...}", "GET /a/b/c"], "GET", "/a/b/x", True, id="rest catches"),
    pytest.param([], "GET", "/", False, id="no templates"),
]


class TestPermissionMatcher:
    @pytest.mark.parametrize(("templates", "method", "path", "allowed"), MATCH_CASES)
    def test_matches(self, templates: list[str], method: str, path: str, allowed: bool) -> None:
        """Segment-wise, case-sensitive matching with methods, variables and rests."""
        assert matcher(*templates).matches(method, split_path(path)) is allowed

    def test_agrees_with_the_plain_reading_of_the_rules(self) -> None:
        """On every combination of a set of overlapping templates and paths, the trie gives
        the answer of checking each template on its own."""
        texts = [
            "GET /a",
            "GET /a/",
            "GET /a/{x}",
            "GET /a/{x}/b",
            "GET /a/b/c",
            "POST /a/{r...}",
            "* /c/{x}/{y}",
            "GET /{x}/b",
            "DELETE /a/b",
            "GET /a/{x}/{r...}",
            "HEAD /h",
        ]
        paths = [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a/b/",
            "/a/b/c",
            "/a/c/b",
            "/a/b/c/d",
            "/c/1/2",
            "/c/1/",
            "/z/b",
            "/h",
            "/a/x/y/z/",
        ]
        templates = [compile_template(t) for t in texts]
        for size in (1, 2, 3):
            for chosen in itertools.combinations(templates, size):
                combined = PermissionMatcher(chosen)
                for method, path in itertools.product(("GET", "HEAD", "POST", "DELETE"), paths):
                    expected = any(reference_match(t, method, path) for t in chosen)
                    got = combined.matches(method, split_path(path))
                    assert got is expected, (chosen, method, path)

    def test_very_long_path(self) -> None:
        """A path of 10000 segments is answered, not a crash (work is bounded by the
        templates, not by the request)."""
        segments = ("x",) * 10_000
        assert matcher("GET /x/{rest...}").matches("GET", segments)
        assert not matcher("GET /x/{id}/x", "GET /{a}/{b}/{c}/{d}").matches("GET", segments)
