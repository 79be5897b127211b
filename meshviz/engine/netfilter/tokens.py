"""Splitting a rule line into tokens with their columns: iptables-restore's quoting, and a POSIX shell's for pasted
`iptables ...` commands.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------


class TokenizeError(Exception):
    def __init__(self, col: int, message: str):
        super().__init__(message)
        self.col = col
        self.message = message


_UNESCAPE = re.compile(r"\\(.)")
_RESTORE_TOKEN = re.compile(r'([^\s"]*)(?:"((?:[^"\\]|\\.)*)("|\Z))?')
_WS = re.compile(r"\s*")


def restore_tokens_with_columns(line: str) -> list[tuple[str, int]]:
    """Split a line the way iptables-restore does; (token, 0-based column) pairs.

    Double quotes group words; inside them a backslash escapes the next
    character.  An opening quote continues the current word, a closing quote
    ends it.  Single quotes and backslashes outside quotes are ordinary.
    """
    out: list[tuple[str, int]] = []
    pos, n = 0, len(line)
    while True:
        pos = _WS.match(line, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            return out
        m = _RESTORE_TOKEN.match(line, pos)
        assert m is not None
        if m.end() == pos:  # a quote that cannot be closed (`"abc\` at the end of the line)
            raise TokenizeError(pos, "unterminated quoted string")
        if m.group(2) is not None:
            if m.group(3) == "":
                raise TokenizeError(pos + len(m.group(1)), "unterminated quoted string")
            out.append((m.group(1) + _UNESCAPE.sub(r"\1", m.group(2)), pos))
        else:
            out.append((m.group(1), pos))
        pos = m.end()


def restore_tokens(line: str) -> list[str]:
    """Fast path of restore_tokens_with_columns (tokens only)."""
    if '"' not in line:
        return line.split()
    if "\\" not in line:
        parts = line.split('"')
        if len(parts) == 3 and (not parts[0] or parts[0][-1].isspace()) and (not parts[2] or parts[2][0].isspace()):
            # the common case: one quoted word standing on its own
            simple = parts[0].split()
            simple.append(parts[1])
            simple.extend(parts[2].split())
            return simple
        if len(parts) % 2 == 1:
            toks: list[str] = []
            last = len(parts) - 1
            for k in range(0, last, 2):
                seg = parts[k]
                words = seg.split()
                if words and not seg[-1].isspace():
                    words[-1] += parts[k + 1]
                    toks.extend(words)
                else:
                    toks.extend(words)
                    toks.append(parts[k + 1])
            toks.extend(parts[last].split())
            return toks
    return [t for t, _ in restore_tokens_with_columns(line)]


_SHELL_SPECIAL = set(";&|<>`")


def shell_tokens_with_columns(line: str) -> list[tuple[str, int]]:
    """A small POSIX-shell word splitter: quotes, backslashes, `#` comments.

    Expansions (`$VAR`, backticks) and operators (`;`, `&&`, `|`, redirections)
    are refused: meshviz applies one command per line and never guesses what
    a shell would have substituted.
    """
    out: list[tuple[str, int]] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        if line[i] == "#":
            break
        start = i
        buf: list[str] = []
        while i < n and line[i] not in " \t":
            c = line[i]
            if c == "\\":
                if i + 1 < n:
                    buf.append(line[i + 1])
                i += 2
            elif c == "'":
                j = line.find("'", i + 1)
                if j < 0:
                    raise TokenizeError(i, "unterminated single-quoted string")
                buf.append(line[i + 1 : j])
                i = j + 1
            elif c == '"':
                i += 1
                while i < n and line[i] != '"':
                    if line[i] == "\\" and i + 1 < n and line[i + 1] in '"\\$`':
                        buf.append(line[i + 1])
                        i += 2
                        continue
                    if line[i] in "$`":
                        raise TokenizeError(i, "shell expansion inside double quotes is not supported")
                    buf.append(line[i])
                    i += 1
                if i >= n:
                    raise TokenizeError(start, "unterminated double-quoted string")
                i += 1
            elif c in _SHELL_SPECIAL:
                raise TokenizeError(i, f"shell operator `{c}' is not supported: give one command per line")
            elif c == "$" and not (i == start and (i + 1 >= n or line[i + 1] in " \t")):
                raise TokenizeError(i, "shell expansion (`$...') is not supported")
            else:
                buf.append(c)
                i += 1
        out.append(("".join(buf), start))
    return out
