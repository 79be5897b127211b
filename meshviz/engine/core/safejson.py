"""JSON for untrusted input: bounded nesting and number size, errors as `json.JSONDecodeError`.

`json.loads` recurses once per nesting level (a 2,000-level document raises RecursionError, deeper ones can exhaust
the C stack) and refuses integers over 4,300 digits with a bare ValueError.  `loads` checks both first and reports
them like any other syntax error, with the line and column where the limit was crossed.  The check of valid JSON
within the bounds - nearly every text - is a few passes of C code (`valid_json_within_bounds`); the character by
character scan (`check`) runs only for text json refuses or that crosses a bound, to say where.
"""

from __future__ import annotations

import json
import re
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


_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))  # digits -> "0", the rest -> " "
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(r'"[^"]*"')
_LEAF = re.compile(r"\(\)")
_OPEN_CLOSE = str.maketrans("[{]}", "(())")
_SLICE = 1 << 22


def valid_json_within_bounds(
    text: str | bytes, *, max_depth: int = MAX_DEPTH, max_digits: int = MAX_NUMBER_DIGITS
) -> bool:
    """For text that is valid JSON: True when `check` passes, found with a few passes of C code over the bytes
    instead of a Python loop over every character (a 42 MB dump: ~0.3 s instead of ~5 s).  False means "not sure":
    run `check`.

    No run of more than `max_digits` digits anywhere (strings included): no number is too long.  In valid JSON a
    backslash only appears in a string, escaping the next character: with the `\\\\` and `\\"` escapes removed,
    every quote left opens or closes a string, and without the strings what is left of the brackets is the sequence
    `check` counts.  Balanced, removing every `()` pair (a leaf) lowers each level by one, so it vanishes after
    exactly its deepest nesting's number of passes.

    UTF-8 bytes are read as they are (no copy of the text is encoded): a byte of a multi-byte character is never a
    digit, a quote, a backslash or a bracket, so the answer is the text's.
    """
    run = b"0" * (max_digits + 1)
    parts: list[bytes] = []
    start, n = 0, len(text)
    while start < n:  # in slices, so that no copy of a big text is whole in memory
        end = min(start + _SLICE, n)
        while end < n and text[end - 1 : end] in ("\\", b"\\"):  # a slice never ends inside a run of backslashes
            end += 1
        data = _utf8(text[max(0, start - max_digits) : end])
        if run in data.translate(_DIGITS_ONLY):
            return False
        if start:
            data = _utf8(text[start:end])
        if b"\\" in data:
            data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        parts.append(data.translate(None, _NOT_STRUCTURE))
        start = end
    # `""` is an empty string or the end of one string and the start of the next: dropping it drops no bracket
    # outside the strings (only a few strings hold a bracket: the regular expression sees little)
    brackets = _STRING.sub("", b"".join(parts).replace(b'""', b"").decode("ascii")).translate(_OPEN_CLOSE)
    del parts
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets = _LEAF.sub("", brackets)
    return not brackets


def _utf8(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_digits: int = MAX_NUMBER_DIGITS) -> Any:
    """`json.loads` with the bounds of `check`; every failure is a `json.JSONDecodeError` (a ValueError).

    The fast way: `valid_json_within_bounds` checks the bounds in C passes (assuming valid JSON), then json decodes
    it, which proves it valid.  When json refuses it, the slow `check` runs first, as it always did, so the error is
    the first bound crossed if any, else json's.  (Invalid JSON agrees with the fast check's view up to its first
    syntax error, where json stops: json never nests deeper than the fast check saw.)"""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if valid_json_within_bounds(text, max_depth=max_depth, max_digits=max_digits):
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass
    check(text, max_depth=max_depth, max_digits=max_digits)
    try:
        return json.loads(text)
    except RecursionError as exc:  # pragma: no cover - `check` bounds the depth well below the recursion limit
        raise json.JSONDecodeError("nested too deeply", text, 0) from exc
