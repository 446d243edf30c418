"""Property tests of authsvc.rules.endpoints (compile_template, PermissionMatcher) against a
naive matcher that walks one template at a time, segment by segment (SPEC §1).

Run longer: ``AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q
tests/adversarial/test_endpoint_properties.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from authsvc.rules.endpoints import PermissionMatcher, TemplateError, compile_template

VARIABLE = "{}"
REST = "{...}"
# A small alphabet of literals, so that templates and requests collide often (and one
# template's literal often stands where another has a variable).
LITERALS = ["a", "b", "c", "A", "a.b", "~", "{"]
_TEMPLATE_SEGMENTS = ["a", "b", "a", "b", "A", "a.b", "~", VARIABLE, VARIABLE, VARIABLE]
TEMPLATE_METHODS = ["GET", "HEAD", "POST", "DELETE", "*"]
REQUEST_METHODS = ["GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"]


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(method, segments) of a valid template; VARIABLE and REST stand for ``{vN}`` and
    ``{vN...}``, and an empty last segment for a trailing slash."""
    method = draw(st.sampled_from(TEMPLATE_METHODS))
    segments = draw(st.lists(st.sampled_from(_TEMPLATE_SEGMENTS), min_size=0, max_size=4))
    ending = draw(st.sampled_from(["", "slash", "rest"]))
    if ending == "slash" or (not segments and ending == ""):
        segments.append("")
    elif ending == "rest":
        segments.append(REST)
    return method, segments


def template_text(method: str, segments: list[str]) -> str:
    """``METHOD /path`` with numbered variable names (no name used twice)."""
    written = []
    for index, segment in enumerate(segments):
        if segment == VARIABLE:
            written.append(f"{{v{index}}}")
        elif segment == REST:
            written.append(f"{{v{index}...}}")
        else:
            written.append(segment)
    return f"{method} /" + "/".join(written)


# Canonical request segments: non-empty, except a trailing slash's empty last one.
REQUESTS = st.builds(
    lambda segments, slash: (*segments, "") if slash or not segments else tuple(segments),
    st.lists(st.sampled_from(LITERALS), max_size=6),
    st.booleans(),
)


@st.composite
def near(draw: st.DrawFn, template: list[str]) -> tuple[str, ...]:
    """A request built from ``template``: variables filled with a literal or left empty,
    a rest filled with zero to three segments, and sometimes a segment more or less."""
    request: list[str] = []
    literal = st.sampled_from(["a", "b", "c", "", ""])
    for segment in template:
        if segment == VARIABLE:
            request.append(draw(literal))
        elif segment == REST:
            request += draw(st.lists(literal, max_size=3))
        else:
            request.append(segment)
    change = draw(st.sampled_from(["", "", "append", "drop", "slash"]))
    if change == "append":
        request.append(draw(literal))
    elif change == "drop" and request:
        request.pop()
    elif change == "slash":
        request.append("")
    # Canonical segments: only the last one may be empty, and "/" is ("",).
    cut = [s for s in request[:-1] if s] + request[-1:]
    return tuple(cut) if cut else ("",)


def _replace(segments: list[str], at: int, replacement: str) -> list[str]:
    if replacement == "cut" or (replacement == REST and at != len(segments) - 1):
        return [*segments[:at], REST if at else ""]
    return [*segments[:at], replacement, *segments[at + 1 :]]


@st.composite
def sibling(draw: st.DrawFn, template: tuple[str, list[str]]) -> tuple[str, list[str]]:
    """``template`` with one or two segments replaced (by a literal, a variable or a rest)
    or the path cut short: templates that overlap are where a trie can go wrong."""
    segments = template[1]
    for _ in range(draw(st.integers(1, 2))):
        at = draw(st.integers(0, len(segments) - 1))
        replacement = draw(st.sampled_from(["a", "b", VARIABLE, REST, "cut"]))
        segments = _replace(segments, at, replacement)
    if REST in segments[:-1] or "" in segments[:-1]:
        return template
    return draw(st.sampled_from([template[0], *TEMPLATE_METHODS])), segments


@st.composite
def permissions_and_requests(
    draw: st.DrawFn, most: int
) -> tuple[list[tuple[str, list[str]]], str, tuple[str, ...]]:
    """Templates (some overlapping), a method (often one they name) and a request that is
    either random or built near one of them."""
    first = draw(templates())
    written = [first]
    for _ in range(draw(st.integers(0, most - 1))):
        written.append(draw(st.one_of(templates(), sibling(first), sibling(written[-1]))))
    named = [m for m, _ in written if m != "*"]
    method = draw(st.sampled_from([*named, *named, "HEAD", *REQUEST_METHODS]))
    request = draw(st.one_of(REQUESTS, st.sampled_from(written).flatmap(lambda t: near(t[1]))))
    return written, method, request


def naive_path_match(template: list[str], request: tuple[str, ...]) -> bool:
    """Literal segments equal, ``{x}`` one non-empty segment, a last ``{x...}`` one or more
    remaining segments, the first of them non-empty."""
    for index, segment in enumerate(template):
        if segment == REST:
            remaining = request[index:]
            return len(remaining) >= 1 and remaining[0] != ""
        if index >= len(request):
            return False
        if segment == VARIABLE:
            if request[index] == "":
                return False
        elif segment != request[index]:
            return False
    return len(template) == len(request)


def naive_method_match(template: str, method: str) -> bool:
    """``*`` is any method, and HEAD is allowed wherever GET is."""
    return template in ("*", method) or (template == "GET" and method == "HEAD")


class TestPermissionMatcher:
    @given(permissions_and_requests(6))
    def test_equals_the_naive_matcher(
        self, case: tuple[list[tuple[str, list[str]]], str, tuple[str, ...]]
    ) -> None:
        """The trie matcher says yes exactly when some template, tried alone by the naive
        matcher, matches the method and the canonical segments."""
        written, method, request = case
        texts = [template_text(m, s) for m, s in written]
        matcher = PermissionMatcher([compile_template(t) for t in dict.fromkeys(texts)])
        expected = any(
            naive_method_match(m, method) and naive_path_match(s, request) for m, s in written
        )
        assert matcher.matches(method, request) is expected, (texts, method, request)

    @given(permissions_and_requests(1))
    def test_a_template_alone_matches_like_the_naive_matcher(
        self, case: tuple[list[tuple[str, list[str]]], str, tuple[str, ...]]
    ) -> None:
        """One template: the same answer as the naive matcher, and its text is kept."""
        (written,), method, request = case
        text = template_text(*written)
        compiled = compile_template(text)
        assert compiled.text == text
        expected = naive_method_match(written[0], method) and naive_path_match(written[1], request)
        assert PermissionMatcher([compiled]).matches(method, request) is expected, (text, request)


class TestCompileTemplate:
    @given(st.text(max_size=40))
    def test_arbitrary_text_compiles_or_is_a_template_error(self, text: str) -> None:
        """Any text is a template or a TemplateError; nothing else escapes."""
        with contextlib.suppress(TemplateError):
            compile_template(text)

    @given(
        st.sampled_from(TEMPLATE_METHODS),
        st.lists(
            st.sampled_from(
                ["a", "{x}", "{x...}", "", ".", "..", "%41", "a;b", "{x", "{1}", "a b"]
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def test_compiled_templates_are_well_formed(self, method: str, segments: list[str]) -> None:
        """A template that compiles has no dot, empty (but a trailing) or malformed
        segment, uses each variable once, and keeps {name...} last."""
        text = f"{method} /" + "/".join(segments)
        try:
            compiled = compile_template(text)
        except TemplateError:
            return
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            assert segment not in (".", "..", "{x", "{1}", "a;b", "%41", "a b"), text
            assert segment or index == last, text
            assert segment != "{x...}" or index == last, text
        assert segments.count("{x}") + segments.count("{x...}") <= 1, text
        assert compiled.method == method


def _small_templates() -> list[list[str]]:
    """Every template path of at most two segments over {a, b, {x}}, with each ending."""
    bodies: list[list[str]] = [[]]
    for _ in range(2):
        bodies += [
            [*b, s] for b in bodies if len(b) == len(bodies[-1]) for s in ("a", "b", VARIABLE)
        ]
    paths = []
    for body in bodies:
        paths += [[*body, ""], [*body, REST]] + ([body] if body else [])
    return paths


def _small_requests() -> list[tuple[str, ...]]:
    """Every canonical request path of at most three segments over {a, b}."""
    found: list[tuple[str, ...]] = [()]
    for length in range(1, 4):
        found += [(*r, s) for r in found if len(r) == length - 1 for s in ("a", "b")]
    return [r for r in found if r] + [(*r, "") for r in found]


class TestSmallScope:
    def test_every_pair_of_small_templates(self) -> None:
        """Exhaustively, for every pair of small templates and every small request, the
        trie agrees with the naive matcher (overlaps, trailing slashes, empty rests)."""
        paths = _small_templates()
        requests = _small_requests()
        for first in paths:
            for second in paths:
                written = [("GET", first), ("GET", second)]
                texts = [template_text(m, s) for m, s in written]
                matcher = PermissionMatcher([compile_template(t) for t in dict.fromkeys(texts)])
                for request in requests:
                    expected = naive_path_match(first, request) or naive_path_match(second, request)
                    assert matcher.matches("GET", request) is expected, (texts, request)
