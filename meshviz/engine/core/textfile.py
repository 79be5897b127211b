"""A text file read a block at a time, and read whole again later only if it is still the file that was read.

A parser that keeps only offsets into its input (the iptables fast path) need not hold the whole text while it
reads: `TextFile.pieces()` gives the file's text in blocks that each end at a line's end (the last excepted), and
`TextFile.text()` gives the whole text when something first needs it - the same text, decoded the same way, or
`SourceChanged` if the file is no longer the one the pieces came from (its size and modification time, the
text's length and CRC-32 are compared), so that offsets taken from the pieces never point into a different text.

The text is what `Path.read_text(encoding="utf-8", errors="replace")` gives (undecodable bytes replaced by U+FFFD,
universal newlines), read through the same text decoder a block of characters at a time and cut after a newline:
the pieces join into exactly that text.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator

BLOCK = 1 << 18


class SourceChanged(Exception):
    """The file changed after it was read a piece at a time, before its text was needed again."""

    def __init__(self, path: str):
        super().__init__(f"{path}: the file changed while it was being read; read it again")
        self.path = path


class TextFile:
    def __init__(self, path: str | os.PathLike[str], block: int = BLOCK):
        self.path = os.fspath(path)
        self.block = block  # characters per read
        self._read: tuple[int, int, int, int] | None = None  # the text's length and CRC-32 and the file's, once read

    def pieces(self) -> Iterator[str]:
        """The file's text in pieces, each but the last ending with a newline."""
        chars = 0
        crc = 0
        rest = ""
        with open(self.path, encoding="utf-8", errors="replace") as f:
            stat = os.fstat(f.fileno())
            while True:
                data = f.read(self.block)
                if not data:
                    break
                cut = data.rfind("\n") + 1
                if not cut:  # no line ends in this block: it joins the next one
                    rest += data
                    continue
                piece = rest + data[:cut] if rest else data[:cut]
                rest = data[cut:]
                data = ""
                chars += len(piece)
                crc = zlib.crc32(piece.encode("utf-8", "surrogatepass"), crc)
                yield piece
                piece = ""
        chars += len(rest)
        crc = zlib.crc32(rest.encode("utf-8", "surrogatepass"), crc)
        self._read = (chars, crc, stat.st_size, stat.st_mtime_ns)
        yield rest

    def text(self) -> str:
        """The whole text; SourceChanged if the pieces were all read and the file or its text differs from theirs."""
        with open(self.path, encoding="utf-8", errors="replace") as f:
            stat = os.fstat(f.fileno())
            text = f.read()
        if self._read is not None:
            chars, crc, size, mtime = self._read
            if (len(text), stat.st_size, stat.st_mtime_ns) != (chars, size, mtime) or crc != zlib.crc32(
                text.encode("utf-8", "surrogatepass")
            ):
                raise SourceChanged(self.path)
        return text
