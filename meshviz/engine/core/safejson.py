"""JSON for untrusted input: bounded nesting and number size, errors as `json.JSONDecodeError`.

`json.loads` recurses once per nesting level (a 2,000-level document raises RecursionError, deeper ones can exhaust
the C stack) and refuses integers over 4,300 digits with a bare ValueError.  `loads` checks both in one linear scan
first and reports them like any other syntax error, with the line and column where the limit was crossed.
"""

from __future__ import annotations

import json
from typing import Any

#: Deepest nesting accepted.  Real Envoy config dumps nest about 40 levels.
MAX_DEPTH = 200
#: Most digits in one number (integer or fraction part).  Envoy's largest numbers are 20-digit uint64s.
MAX_NUMBER_DIGITS = 400


def check(text: str, *, max_depth: int = MAX_DEPTH, max_digits: int = MAX_NUMBER_DIGITS) -> None:
    """Raise `json.JSONDecodeError` at the first place nesting or a number exceeds the bounds."""
    depth = 0
    in_string = False
    escaped = False
    digits = 0
    for pos, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if "0" <= ch <= "9":
            digits += 1
            if digits > max_digits:
                raise json.JSONDecodeError(f"a number longer than {max_digits} digits", text, pos)
            continue
        digits = 0
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise json.JSONDecodeError(f"nested deeper than {max_depth} levels", text, pos)
        elif ch in "]}":
            depth -= 1


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_digits: int = MAX_NUMBER_DIGITS) -> Any:
    """`json.loads` with the bounds of `check`; every failure is a `json.JSONDecodeError` (a ValueError)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    check(text, max_depth=max_depth, max_digits=max_digits)
    try:
        return json.loads(text)
    except RecursionError as exc:  # pragma: no cover - `check` bounds the depth well below the recursion limit
        raise json.JSONDecodeError("nested too deeply", text, 0) from exc
