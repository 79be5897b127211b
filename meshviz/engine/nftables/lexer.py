"""Tokens of nft's language: words, quoted strings, braces, commas, semicolons and line ends, each with its
1-based line and column.  `# ...` comments are dropped, except `# handle N` (what `nft -a` prints), which
becomes a HANDLE token."""

from __future__ import annotations

import re
from dataclasses import dataclass

SPECIALS = "{},;"


@dataclass(frozen=True)
class Token:
    kind: str  # WORD STRING LBRACE RBRACE COMMA SEMI NL HANDLE
    text: str
    line: int
    column: int


_KIND = {"{": "LBRACE", "}": "RBRACE", ",": "COMMA", ";": "SEMI"}


class LexError(Exception):
    def __init__(self, line: int, column: int, message: str):
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


_TOKEN = re.compile(r'"[^"]*"|"|[{},;]|#.*|\\\s*$|[^\s{},;"#]+')


def tokenize(text: str, first_line: int = 1) -> list[Token]:
    """Split `text` into tokens; a line continued with a trailing backslash is one line.  `first_line` is the
    number of the text's first line (a piece of a bigger text)."""
    out: list[Token] = []
    append = out.append
    for lineno, raw in enumerate(text.splitlines(), first_line):
        line = raw.rstrip("\r")
        continued = False
        for m in _TOKEN.finditer(line):
            tok = m.group()
            c = tok[0]
            col = m.start() + 1
            if c == '"':
                if len(tok) == 1 or not tok.endswith('"'):
                    raise LexError(lineno, col, "unterminated string")
                append(Token("STRING", tok[1:-1], lineno, col))
            elif c in SPECIALS:
                append(Token(_KIND[c], c, lineno, col))
            elif c == "#":
                rest = tok[1:].split()
                if len(rest) == 2 and rest[0] == "handle" and rest[1].isdecimal():
                    append(Token("HANDLE", rest[1], lineno, col))
                break
            elif c == "\\":
                continued = True
                break
            else:
                append(Token("WORD", tok, lineno, col))
        if not continued:
            append(Token("NL", "", lineno, len(line) + 1))
    return out
