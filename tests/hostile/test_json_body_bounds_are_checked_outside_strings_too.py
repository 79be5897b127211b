"""The API's JSON bounds (depth 200, 400-digit numbers) are checked by C passes over the body, then, where those cannot
vouch for it, on the body with its strings blanked out (issue 15: megabytes of evidence in strings no longer scanned
character by character); the answers, errors and their positions are the same as the full scan's."""

from __future__ import annotations

import json

import pytest

from meshviz.engine.core import safejson
from meshviz.web.parsers import bounded_loads

DEEP = "[" * 250 + "]" * 250
CASES = [
    '{"iptables": "' + "x" * 10000 + '", "n": [1, 2, {"a": null}]}',
    '{"text": "brackets [[[{{{ and \\" quotes \\\\" , "deep": ' + DEEP + "}",
    '{"text": "' + "[" * 500 + '"}',  # brackets inside a string are not nesting
    '{"n": 1' + "1" * 450 + "}",
    '{"s": "\\"' + "1" * 450 + '"}',  # digits inside a string are not a number
    '{"unterminated": "abc [[[',
    '["a\\\\", ' + DEEP + "]",  # an escaped backslash ends the string before the nesting
    "[" * 5000 + "]" * 5000,
    '{"a": "line\nbreak"}',
    # an upload as the API gets it: a dump inside a string, every quote and line end escaped (the quick C check)
    json.dumps({"envoy_config_dump": json.dumps({"configs": [{"a": [1, {"b": 'x"y\\z'}]}] * 200}, indent=1)}),
    json.dumps({"envoy_config_dump": "1" * 450, "deep": json.loads(DEEP)}),  # a long digit run in a string, deep
]


@pytest.mark.parametrize("text", CASES)
def test_same_answer_or_error_as_the_full_scan(text: str) -> None:
    def outcome(load: object) -> object:
        try:
            return ("ok", load(text))  # type: ignore[operator]
        except json.JSONDecodeError as exc:
            return ("error", exc.msg, exc.pos)

    assert outcome(bounded_loads) == outcome(safejson.loads)
