"""Large and compressed uploads (issue 15): evidence files up to MESHVIZ_MAX_UPLOAD_BYTES each, `.gz` files and
`Content-Encoding: gzip` request bodies, read in chunks and never held whole in memory more than once.

* `read_text(upload, source)`: an uploaded file (Django keeps those over FILE_UPLOAD_MAX_MEMORY_SIZE on disk) as
  text, decompressed when it is gzip (by its `.gz` name or its magic bytes), decoded chunk by chunk. Too large
  (before or after decompression) is `TooLarge` (413), corrupt gzip or not UTF-8 is `Unreadable` (400).
* `GzipRequestMiddleware`: a request body sent with `Content-Encoding: gzip` is decompressed into a spooled
  temporary file (memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, disk beyond) with a cap of MESHVIZ_MAX_REQUEST_BYTES,
  so a gzip bomb stops at the cap with a JSON 413; corrupt data is a JSON 400. The view then reads the plain body.
"""

from __future__ import annotations

import codecs
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

#: read and decompress in pieces of this size
CHUNK = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
#: zlib's window bits for "gzip header and trailer" (16 + 15)
GZIP_WBITS = 31


class UploadError(Exception):
    """An upload meshviz cannot take: `status` 413 (too large) or 400 (unreadable), `source` names the input."""

    status = 400

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message


class TooLarge(UploadError):
    status = 413


class Unreadable(UploadError):
    status = 400


def max_upload_bytes() -> int:
    return int(settings.MESHVIZ_MAX_UPLOAD_BYTES)


def max_request_bytes() -> int:
    return int(getattr(settings, "MESHVIZ_MAX_REQUEST_BYTES", 0) or max_upload_bytes())


def is_gzip_name(name: str | None) -> bool:
    return bool(name) and str(name).lower().endswith(".gz") and not str(name).lower().endswith(".tar.gz")


def _chunks(stream: IO[bytes] | HttpRequest | Any, size: int = CHUNK) -> Iterator[bytes]:
    while True:
        piece = stream.read(size)
        if not piece:
            return
        yield piece


def gunzip_chunks(chunks: Iterator[bytes], *, limit: int, source: str) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream (members one after another, as gzip(1) writes them), in pieces.

    Raises TooLarge as soon as more than `limit` bytes come out (a gzip bomb stops there), Unreadable when the data
    is not gzip or ends early.
    """
    total = 0
    decomp = zlib.decompressobj(GZIP_WBITS)
    started = False
    for data in chunks:
        pending = data
        while pending:
            if not started and len(pending) >= 2 and pending[:2] != GZIP_MAGIC:
                raise Unreadable(source, "not gzip data (it does not start with the gzip magic bytes 1f 8b)")
            started = True
            try:
                # at most `limit + 1 - total` bytes at a time: never inflate more than the cap allows
                out = decomp.decompress(pending, max(1, limit + 1 - total))
            except zlib.error as exc:
                raise Unreadable(source, f"corrupt gzip data ({exc})") from exc
            total += len(out)
            if total > limit:
                raise TooLarge(source, f"{source} decompresses to more than the {limit:,}-byte limit")
            if out:
                yield out
            if decomp.eof:
                # another gzip member may follow (concatenated .gz files)
                pending = decomp.unused_data
                decomp = zlib.decompressobj(GZIP_WBITS)
                started = False
                continue
            pending = decomp.unconsumed_tail
    if started and not decomp.eof:
        raise Unreadable(source, "the gzip data ends early (truncated upload?)")


def _decode(chunks: Iterator[bytes], source: str) -> str:
    """UTF-8 text from byte pieces, decoded piece by piece (the bytes are never all held at once)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    offset = 0
    for piece in chunks:
        try:
            parts.append(decoder.decode(piece))
        except UnicodeDecodeError as exc:
            raise Unreadable(
                source,
                f"not UTF-8 text (byte {offset + exc.start}): upload the command's text output, not a binary file",
            ) from exc
        offset += len(piece)
    try:
        parts.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        raise Unreadable(source, f"not UTF-8 text (byte {offset + exc.start}): the text ends mid-character") from exc
    return "".join(parts)


def read_text(upload: Any, source: str, *, limit: int | None = None) -> str:
    """The text of an uploaded evidence file, gunzipped when it is gzip; TooLarge or Unreadable otherwise."""
    limit = max_upload_bytes() if limit is None else limit
    name = getattr(upload, "name", "") or ""
    head = upload.read(2)
    gz = head == GZIP_MAGIC or is_gzip_name(name)

    def raw() -> Iterator[bytes]:
        yield head
        yield from _chunks(upload)

    if gz:
        pieces = gunzip_chunks(raw(), limit=limit, source=source)
    else:
        size = getattr(upload, "size", None)
        if size is not None and size > limit:
            raise TooLarge(source, f"{source} is larger than the {limit:,}-byte limit (MESHVIZ_MAX_UPLOAD_BYTES)")
        pieces = _capped(raw(), limit, source)
    return _decode(pieces, source)


def _capped(chunks: Iterator[bytes], limit: int, source: str) -> Iterator[bytes]:
    total = 0
    for piece in chunks:
        total += len(piece)
        if total > limit:
            raise TooLarge(source, f"{source} is larger than the {limit:,}-byte limit (MESHVIZ_MAX_UPLOAD_BYTES)")
        yield piece


def gunzip_bytes(data: bytes, source: str, *, limit: int | None = None) -> bytes:
    """Decompress a whole gzip payload held in memory (with the same cap and errors)."""
    limit = max_upload_bytes() if limit is None else limit
    return b"".join(gunzip_chunks(iter([data]), limit=limit, source=source))


# --------------------------------------------------------------------------
# Content-Encoding: gzip request bodies
# --------------------------------------------------------------------------


def _error_response(exc: UploadError) -> HttpResponse:
    body = {"errors": [{"source": exc.source, "line": 0, "column": 0, "text": "", "message": exc.message}]}
    return JsonResponse(body, status=exc.status)


class GzipRequestMiddleware:
    """Decompress `Content-Encoding: gzip` request bodies before any view (or CSRF check) reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding in ("", "identity"):
            return self.get_response(request)
        if encoding not in ("gzip", "x-gzip"):
            return _error_response(
                UploadError("request", f"unsupported Content-Encoding {encoding!r}: send the body plain or gzip")
            )
        limit = max_request_bytes()
        spool = tempfile.SpooledTemporaryFile(max_size=int(settings.FILE_UPLOAD_MAX_MEMORY_SIZE))  # noqa: SIM115
        try:
            for piece in gunzip_chunks(_chunks(request), limit=limit, source="the request body"):
                spool.write(piece)
        except UploadError as exc:
            spool.close()
            return _error_response(exc)
        size = spool.tell()
        spool.seek(0)
        # the view sees a plain body of `size` bytes
        request._stream = spool  # type: ignore[assignment]
        request._read_started = False  # type: ignore[attr-defined]
        request.META["CONTENT_LENGTH"] = str(size)
        del request.META["HTTP_CONTENT_ENCODING"]
        try:
            return self.get_response(request)
        finally:
            spool.close()
