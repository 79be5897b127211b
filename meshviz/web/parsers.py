"""The API's JSON parser: bounded nesting and number size (meshviz.engine.core.safejson), errors as 400s.

DRF's JSONParser calls `json.load`: a body nested 2,000 levels deep raised RecursionError (an HTML 500) and a
4,300-digit number a bare ValueError.  This parser reports both as a ParseError naming the line and column.

The bounds are checked first by `safejson.valid_json_within_bounds` (a few passes of C code over the bytes: a 42 MB
body in ~0.2 s), then, for a body it cannot vouch for, on the body with its strings blanked out (a regular expression, at C speed): an
upload's evidence travels inside JSON strings, so what is left to scan character by character is a few hundred
bytes instead of megabytes (issue 15: 70 ms of every typical upload went to that scan). Only a body that fails
the quick check is scanned again in full, for the exact line and column.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from meshviz.engine.api import gc_paused, safejson

#: a complete JSON string (what safejson.check skips over character by character)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def bounded_loads(text: str) -> Any:
    """`safejson.loads(text)` with the same bounds and errors, faster on text that is mostly strings."""
    if safejson.valid_json_within_bounds(text):  # C passes over the bytes: a 42 MB body in ~0.2 s
        try:
            with gc_paused():  # a big body's objects hold no cycles
                return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass  # not JSON: the checks below say where
    try:
        safejson.check(_STRING.sub('""', text))
    except json.JSONDecodeError:
        return safejson.loads(text)  # the full scan reports the position in the original text
    return json.loads(text)


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not {encoding} text") from exc
        try:
            return bounded_loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
        except (RecursionError, ValueError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
