"""Issue 15's faster Envoy path gives exactly what the plain one gave: `safejson.loads` (bounds checked in C
passes) against `check` + `json.loads`; `find_name` (str.find) against the regular expression it
replaced; the redaction walker against the walker it replaced (kept here verbatim as the reference)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from meshviz.engine.core import safejson
from meshviz.engine.envoy import redact as redact_module
from meshviz.engine.envoy.parse_base import _Locator
from tests.fuzz import strategies as s

DUMPS = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "envoy").glob("*.json"))


def reference_loads(text: str) -> tuple[str, Any]:
    try:
        safejson.check(text)
        return "ok", json.loads(text)
    except json.JSONDecodeError as e:
        return "error", (e.msg, e.lineno, e.colno)


def fast_loads(text: str) -> tuple[str, Any]:
    try:
        return "ok", safejson.loads(text)
    except json.JSONDecodeError as e:
        return "error", (e.msg, e.lineno, e.colno)


def same(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    # repr: NaN != NaN, and 1 == 1.0 == True would hide an int turned into a float
    return repr(a) == repr(b)


EDGE_CASES = [
    "",
    " [ 1 ] ",
    "[1,]",
    '"abc',
    '"\\',
    "]]][[[",
    "NaN",
    "[1e400, -1e400]",
    "\ufeff[1]",
    '"\ud800"',
    '"\x01"',
    "[-0, -0.0, 1E5, 0.1e-2, 5e-324, 1.7976931348623157e308, 0.30000000000000004]",
    "[18446744073709551615, 18446744073709551616, -9223372036854775808, -9223372036854775809]",
    "[" + "9" * 400 + "]",
    "[" + "9" * 401 + "]",
    "[1." + "0" * 401 + "]",
    '["' + "1" * 500 + '"]',
    '{"a":1,"a":2}',
    '{"a\\\\":[[["\\"]]]"]]]}',
    '{"a" : {"b":[{"c":"]]]]"}]}}',
    '["\\\\\\"[", "[\\\\", "\\u005b"]',
    "[" * 200 + "]" * 200,
    "[" * 201 + "]" * 201,
    "[" * 5000 + "]" * 5000,
    "{" * 100000,
    '[{"a":' * 150 + "1" + "}]" * 150,
    "[" * 199 + '"\\\\"' + "]" * 199,
    "[" * 201 + '"\\\\"' + "]" * 201,
]


@pytest.mark.parametrize("text", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_loads_gives_what_check_and_json_give_on_edge_cases(text: str) -> None:
    assert same(fast_loads(text), reference_loads(text))


@pytest.mark.parametrize("path", DUMPS, ids=[p.name for p in DUMPS])
def test_loads_gives_what_check_and_json_give_on_the_corpus(path: Path) -> None:
    text = path.read_text()
    assert same(fast_loads(text), reference_loads(text))
    # cut anywhere: errors at the same line and column
    for cut in (1, len(text) // 3, len(text) // 2, len(text) - 2):
        assert same(fast_loads(text[:cut]), reference_loads(text[:cut]))


@given(st.one_of(s.envoy_text, s.json_values.map(json.dumps), st.text(max_size=300)))
@example('{"a": [1.5, "x\\"]"]}')
@settings(max_examples=300, deadline=None)
def test_loads_gives_what_check_and_json_give_on_fuzzed_text(text: str) -> None:
    assert same(fast_loads(text), reference_loads(text))


@given(st.one_of(s.envoy_text, s.json_values.map(json.dumps), st.sampled_from(EDGE_CASES)))
@example('["\u00e9' + "\\" * 3 + '", ' + "9" * 401 + "]")
@settings(max_examples=60, deadline=None)
def test_the_bounds_check_of_utf8_bytes_is_the_bounds_check_of_their_text(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    slice_size = safejson._SLICE
    try:
        for safejson._SLICE in (slice_size, 7):  # small slices: every boundary case on short texts
            assert safejson.valid_json_within_bounds(data) == safejson.valid_json_within_bounds(text)
            small = {"max_depth": 3, "max_digits": 5}
            assert safejson.valid_json_within_bounds(data, **small) == safejson.valid_json_within_bounds(text, **small)
    finally:
        safejson._SLICE = slice_size


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
@settings(max_examples=200, deadline=None)
def test_loads_reads_floats_as_json_does(values: list[float]) -> None:
    text = json.dumps(values)
    assert same(fast_loads(text), reference_loads(text))


# ---- find_name ---------------------------------------------------------------


def reference_find_name(text: str, name: str, start: int) -> int:
    m = re.compile(r'"name"\s*:\s*' + re.escape(json.dumps(name))).search(text, start)
    return m.start() if m else -1


@pytest.mark.parametrize("path", DUMPS, ids=[p.name for p in DUMPS])
def test_find_name_finds_what_the_regular_expression_found(path: Path) -> None:
    text = path.read_text()
    loc = _Locator(text)
    names = sorted(set(re.findall(r'"name"\s*:\s*("(?:[^"\\]|\\.)*")', text)))[:200]
    for raw in names:
        name = json.loads(raw)
        for start in (0, len(text) // 2, text.find(raw) + 1):
            assert loc.find_name(name, start) == reference_find_name(text, name, start), (name, start)
    for text2, name, start in (
        ('{"name" :\n "a"}', "a", 0),
        ('{"name":"a"}', "a", 1),
        ('x"name": "a"', "a", 1),
        ('"a", "name": "a"', "a", 0),
        ('"name": "ab"', "a", 0),
        ('"name"\t:\t"a\\"b"', 'a"b', 0),
    ):
        assert _Locator(text2).find_name(name, start) == reference_find_name(text2, name, start)


# ---- the redaction walker ------------------------------------------------------


class ReferenceWalker:
    """meshviz.engine.envoy.redact._Walker as it was before issue 15 (the reference)."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.count = 0

    def _take(self, value: str) -> str:
        if value in redact_module._ALREADY_REDACTED:
            return value
        self.secrets.add(value)
        self.count += 1
        return redact_module.MARKER

    def leaf(self, value: str, *, secret: bool) -> str:
        if secret or redact_module._looks_secret(value):
            return self._take(value)
        return value

    def walk(self, node: Any, *, secret: bool = False, tls: bool = False) -> Any:
        r = redact_module
        if isinstance(node, str):
            return self.leaf(node, secret=secret)
        if isinstance(node, list):
            for i, item in enumerate(node):
                node[i] = self.walk(item, secret=secret, tls=tls)
            return node
        if not isinstance(node, dict):
            return node
        header_secret = r._Walker._is_sensitive_header(node)
        for key, value in node.items():
            k = r._snake(key)
            if k in r._KEEP_KEYS and isinstance(value, str):
                node[key] = self.leaf(value, secret=False)
                continue
            child_secret = secret or r._is_sensitive_key(key)
            if header_secret and k not in ("key", "name"):
                child_secret = True
            if tls and k in r._INLINE_KEYS:
                child_secret = True
            child_tls = tls or k in r._TLS_KEYS or k.endswith("tls_context")
            if k in r._SECRET_SECTIONS and isinstance(value, list):
                node[key] = [self._secret_entry(item) for item in value]
                continue
            node[key] = self.walk(value, secret=child_secret, tls=child_tls)
        return node

    def _secret_entry(self, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return self.walk(entry, secret=True)
        for key, value in entry.items():
            if not isinstance(value, str):
                entry[key] = self.walk(value, secret=True, tls=True)
        return entry


SECRETS: dict[str, Any] = {
    "configs": [
        {
            "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
            "dynamic_active_secrets": [
                {
                    "name": "default",
                    "secret": {"tls_certificate": {"private_key": {"inline_bytes": "LS0tLS1CRUdJTiBQUklWQVRF"}}},
                },
                "loose",
            ],
        },
        {
            "headers": [{"key": "Authorization", "value": "Basic dXNlcjpwYXNz"}, {"name": "cookie", "v": [1, "x"]}],
            "common_tls_context": {"trusted_ca": {"inline_string": "pem"}, "n": [None, True, 3.5]},
            "jwtToken": "abc",
            "note": "Bearer abcdefghijklmnop",
            "password": ["x", {"y": "z"}, 7],
            "nested": [["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"], "[redacted]"],
        },
    ]
}


@pytest.mark.parametrize("path", [*DUMPS, None], ids=[*(p.name for p in DUMPS), "planted-secrets"])
def test_the_walker_redacts_what_the_reference_walker_redacts(path: Path | None) -> None:
    obj = json.loads(path.read_text()) if path is not None else SECRETS
    a, b = copy.deepcopy(obj), copy.deepcopy(obj)
    ref, new = ReferenceWalker(), redact_module._Walker()
    ref.walk(a)
    new.walk(b)
    assert a == b
    assert (ref.count, ref.secrets) == (new.count, new.secrets)
    if path is None:
        assert new.count >= 8
