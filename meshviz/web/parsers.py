"""The API's JSON parser: bounded nesting and number size (meshviz.engine.core.safejson), errors as 400s.

DRF's JSONParser calls `json.load`: a body nested 2,000 levels deep raised RecursionError (an HTML 500) and a
4,300-digit number a bare ValueError.  This parser reports both as a ParseError naming the line and column.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from meshviz.engine.api import safejson


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
            return safejson.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
