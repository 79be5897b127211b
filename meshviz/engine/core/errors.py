"""Errors and warnings as data.

Parsers never raise on bad input: they return what they could parse plus a
list of `ParseError`s (fatal for that line) and `ParseWarning`s (the input was
understood, but something deserves attention).  Callers decide what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ParseError:
    """A problem in the input: which file, 1-based line and column, the offending line."""

    source: str
    line: int
    column: int
    text: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}\n    {self.text}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParseWarning:
    source: str
    line: int
    text: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: warning: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EngineInputError(Exception):
    """Raised by facade helpers when the caller asks for strict parsing and errors exist."""

    def __init__(self, errors: list[ParseError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors[:20]))
