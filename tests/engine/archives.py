"""Building .tar.gz archives in memory for the archive readers' tests, hostile ones included."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import Any

TOP = "meshviz-hr2-geo"
MANIFEST = {"format": "meshviz-bundle", "format_version": 1, "collected": [], "failed": [], "capture": {}}


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    return info, data


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes]], *, gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=9) if gz else raw


def bundle_members(
    files: dict[str, str | bytes], manifest: dict[str, Any] | None = None
) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = [member(f"{TOP}/manifest.json", json.dumps(manifest or MANIFEST).encode())]
    for name, data in files.items():
        out.append(member(f"{TOP}/{name}", data.encode() if isinstance(data, str) else data))
    return out


def zeros_member(name: str, size: int) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, bytes(size))
