"""The JSON read from requests and dumps (meshviz.engine.core.safejson): a value or a JSONDecodeError naming the line
and column, for any text, however deep or long its numbers."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from meshviz.engine.core import safejson
from tests.fuzz import strategies as s
from tests.fuzz.harness import bounded, examples


def _load(text: str) -> None:
    try:
        safejson.loads(text)
    except json.JSONDecodeError as exc:
        assert exc.lineno >= 1 and exc.colno >= 1 and exc.msg


@given(st.one_of(s.envoy_text, s.json_values.map(json.dumps), st.text(max_size=400)))
@example("{" * 100000)
@example("-" + "1" * 100000)
@settings(max_examples=examples("json", 25))
def test_request_json(text: str) -> None:
    bounded("json", text[:200], lambda: _load(text))
