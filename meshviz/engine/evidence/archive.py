"""Reading untrusted `.tar.gz` archives (evidence bundles, `istioctl bug-report` archives) within bounds.

Nothing is written to disk and nothing is trusted: the archive is streamed (`tarfile` mode `r|`) through a
decompressor that stops at `max_total_bytes` of output (a gzip bomb ends there, not in memory), every member
name is checked (absolute paths, `..`, NUL, backslashes, duplicates), anything but a regular file or a
directory (symlinks, hard links, devices, FIFOs) is refused, and a member larger than `max_member_bytes`
(by its header, before it is read) or more than `max_members` entries is refused.  Members that `want`
does not select are skipped without being kept (their bytes still count towards `max_total_bytes`).

Every refusal is an `ArchiveError` naming the member and the problem.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from meshviz.engine.core.errors import ParseError


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 200
    max_member_bytes: int = 16 * 1024 * 1024
    max_total_bytes: int = 64 * 1024 * 1024  # everything decompressed, skipped members included


class ArchiveError(ValueError):
    """A malformed or hostile archive: `member` ("" for the archive itself) and what is wrong with it."""

    def __init__(self, source: str, member: str, problem: str) -> None:
        self.source = source
        self.member = member
        self.problem = problem
        where = f"{source}: member {member!r}" if member else source
        super().__init__(f"{where}: {problem}")

    def to_parse_error(self) -> ParseError:
        return ParseError(self.source, 0, 0, self.member, str(self))


class _Bounded(io.RawIOBase):
    """A read-only stream over `inner` that fails once more than `limit` bytes came out of it."""

    def __init__(self, inner: IO[bytes], limit: int, source: str) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0
        self.source = source

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        want = min(len(b), self.limit + 1 - self.count)
        if want <= 0:
            raise ArchiveError(self.source, "", self._too_big())
        data = self.inner.read(want)
        n = len(data)
        b[:n] = data
        self.count += n
        if self.count > self.limit:
            raise ArchiveError(self.source, "", self._too_big())
        return n

    def _too_big(self) -> str:
        return (
            f"decompresses to more than {self.limit} bytes (a gzip bomb?); "
            "decompression was stopped there, nothing was kept"
        )


def safe_member_name(name: str, source: str) -> str:
    """The member's normalised relative path, or ArchiveError for a name that could escape or mislead."""
    if "\x00" in name:
        raise ArchiveError(source, name.replace("\x00", "\\0"), "NUL byte in the member name")
    if "\\" in name:
        raise ArchiveError(source, name, "backslash in the member name")
    if name.startswith("/"):
        raise ArchiveError(source, name, "absolute path (path traversal)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError(source, name, "'..' in the path (path traversal)")
    if not parts:
        raise ArchiveError(source, name, "empty member name")
    return "/".join(parts)


def read_members(
    data: bytes,
    *,
    source: str,
    want: Callable[[str], bool] = lambda name: True,
    limits: ArchiveLimits | None = None,
    names: list[str] | None = None,
) -> dict[str, bytes]:
    """The selected regular files of a `.tar.gz` (or plain `.tar`), by normalised name; ArchiveError otherwise.

    `names`, when given, receives the name of every regular file, read or skipped.
    """
    lim = limits or ArchiveLimits()
    if data[:2] == b"\x1f\x8b":
        raw: IO[bytes] = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")  # type: ignore[assignment]
    elif len(data) >= 262 and data[257:262] == b"ustar":
        raw = io.BytesIO(data)
    else:
        raise ArchiveError(source, "", "not a .tar.gz archive (no gzip or tar header)")
    stream = io.BufferedReader(_Bounded(raw, lim.max_total_bytes, source))
    out: dict[str, bytes] = {}
    seen: set[str] = set()
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                count += 1
                if count > lim.max_members:
                    raise ArchiveError(
                        source, member.name, f"too many members (more than {lim.max_members}); stopped here"
                    )
                name = safe_member_name(member.name, source)
                if member.issym() or member.islnk():
                    kind = "symbolic link" if member.issym() else "hard link"
                    raise ArchiveError(source, member.name, f"{kind} to {member.linkname!r}: links are refused")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise ArchiveError(source, member.name, "not a regular file (device, FIFO or other special file)")
                if name in seen:
                    raise ArchiveError(source, member.name, "appears twice in the archive")
                seen.add(name)
                if names is not None:
                    names.append(name)
                if member.size > lim.max_member_bytes:
                    raise ArchiveError(
                        source, member.name, f"{member.size} bytes, over the {lim.max_member_bytes}-byte member limit"
                    )
                if not want(name):
                    continue
                f = tar.extractfile(member)
                if f is None:  # pragma: no cover - isfile() members always have data
                    raise ArchiveError(source, member.name, "cannot be read")
                content = f.read(lim.max_member_bytes + 1)
                if len(content) != member.size:
                    raise ArchiveError(source, member.name, "truncated: the archive ends inside this member")
                out[name] = content
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError(source, "", f"not a readable .tar.gz archive: {exc}") from exc
    if count == 0:
        raise ArchiveError(source, "", "the archive is empty")
    return out


def member_text(content: bytes, source: str, member: str) -> str:
    """A member as UTF-8 text without NUL bytes, or ArchiveError."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(source, member, f"not UTF-8 text (byte {exc.start})") from exc
    if "\x00" in text:
        raise ArchiveError(source, member, "contains NUL bytes: not a text file")
    return text
