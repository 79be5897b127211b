"""Tokens of nft's language: words, quoted strings, braces, commas, semicolons and line ends, each with its
1-based line and column.  `# ...` comments are dropped, except `# handle N` (what `nft -a` prints), which
becomes a HANDLE token."""

from __future__ import annotations

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


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens; a line continued with a trailing backslash is one line."""
    out: list[Token] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c in " \t":
                i += 1
                continue
            if c == "\\" and line[i + 1 :].strip() == "":
                break  # continuation: no NL token
            if c == "#":
                rest = line[i + 1 :].split()
                if len(rest) == 2 and rest[0] == "handle" and rest[1].isdecimal():
                    out.append(Token("HANDLE", rest[1], lineno, i + 1))
                break
            if c in SPECIALS:
                out.append(Token(_KIND[c], c, lineno, i + 1))
                i += 1
                continue
            if c == '"':
                j = line.find('"', i + 1)
                if j < 0:
                    raise LexError(lineno, i + 1, "unterminated string")
                out.append(Token("STRING", line[i + 1 : j], lineno, i + 1))
                i = j + 1
                continue
            j = i
            while j < n and line[j] not in " \t" + SPECIALS + '"':
                j += 1
            out.append(Token("WORD", line[i:j], lineno, i + 1))
            i = j
        if not line.rstrip().endswith("\\"):
            out.append(Token("NL", "", lineno, len(line) + 1))
    return out
