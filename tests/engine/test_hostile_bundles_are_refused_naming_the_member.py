"""Malformed or hostile bundles are refused with an ArchiveError naming the member and the problem: path
traversal, absolute paths, links, special files, members too large, too many members, gzip bombs (bounded
decompression), duplicates, a missing or bad manifest - and nothing is written anywhere."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from meshviz.engine.evidence.archive import ArchiveError, ArchiveLimits
from meshviz.engine.evidence.bundle import read_bundle
from tests.kube.fake_apiserver import istio_pod

from .archives import MANIFEST, TOP, bundle_members, member, tar_gz, zeros_member

POD_JSON = json.dumps(istio_pod("hr2", tproxy=False))
SMALL = ArchiveLimits(max_members=8, max_member_bytes=16 * 1024, max_total_bytes=128 * 1024)


def ok_files() -> dict[str, str | bytes]:
    return {"pod.json": POD_JSON, "ip-rule.txt": "0:\tfrom all lookup local\n"}


CASES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "traversal": (
        lambda: tar_gz([*bundle_members(ok_files()), member("../../etc/cron.d/x", b"x")]),
        "../../etc/cron.d/x",
        "path traversal",
    ),
    "absolute": (
        lambda: tar_gz([*bundle_members(ok_files()), member("/etc/passwd", b"x")]),
        "/etc/passwd",
        "absolute path",
    ),
    "symlink": (
        lambda: tar_gz([*bundle_members({}), member(f"{TOP}/pod.json", kind=tarfile.SYMTYPE, link="/etc/passwd")]),
        f"{TOP}/pod.json",
        "symbolic link",
    ),
    "hardlink": (
        lambda: tar_gz(
            [*bundle_members({}), member(f"{TOP}/pod.json", kind=tarfile.LNKTYPE, link=f"{TOP}/manifest.json")]
        ),
        f"{TOP}/pod.json",
        "hard link",
    ),
    "device": (
        lambda: tar_gz([*bundle_members({}), member(f"{TOP}/dev", kind=tarfile.CHRTYPE)]),
        f"{TOP}/dev",
        "not a regular file",
    ),
    "oversize member": (
        lambda: tar_gz([*bundle_members(ok_files()), zeros_member(f"{TOP}/sysctl.txt", 20_000)]),
        f"{TOP}/sysctl.txt",
        "over the 16384-byte member limit",
    ),
    "too many members": (
        lambda: tar_gz([*bundle_members(ok_files()), *(member(f"{TOP}/x{i}", b"x") for i in range(10))]),
        f"{TOP}/x5",
        "too many members",
    ),
    "gzip bomb": (
        # 7 members under the member limit, 105 KiB of zeros in all: decompression stops at 128 KiB of output
        lambda: tar_gz([zeros_member(f"{TOP}/z{i}", 15_000) for i in range(7)] + [zeros_member(f"{TOP}/last", 15_000)]),
        "",
        "decompresses to more than",
    ),
    "duplicate": (
        lambda: tar_gz([*bundle_members(ok_files()), member(f"{TOP}/pod.json", b"{}")]),
        f"{TOP}/pod.json",
        "appears twice",
    ),
    "not gzip": (lambda: b"this is not an archive\n" * 20, "", "not a .tar.gz archive"),
    "truncated": (lambda: tar_gz(bundle_members(ok_files()))[:-40], "", "not a readable .tar.gz archive"),
    "no manifest": (lambda: tar_gz([member(f"{TOP}/pod.json", POD_JSON.encode())]), f"{TOP}/manifest.json", "missing"),
    "manifest not JSON": (
        lambda: tar_gz([member(f"{TOP}/manifest.json", b'{"format": "meshviz-bundle",\n  oops}')]),
        f"{TOP}/manifest.json",
        "not valid JSON at line 2",
    ),
    "newer format": (
        lambda: tar_gz(bundle_members(ok_files(), {**MANIFEST, "format_version": 2})),
        f"{TOP}/manifest.json",
        "format_version 2 is newer",
    ),
    "binary member": (
        lambda: tar_gz(bundle_members({**ok_files(), "ip-route.txt": b"\xff\xfe\x00"})),
        f"{TOP}/ip-route.txt",
        "not UTF-8",
    ),
    "two directories": (
        lambda: tar_gz([*bundle_members(ok_files()), member("other/ip-rule.txt", b"x")]),
        "",
        "one directory",
    ),
    "no pod and no rules": (lambda: tar_gz(bundle_members({"ip-rule.txt": "x\n"})), f"{TOP}/pod.json", "missing"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_bundle_is_refused(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build, member_name, problem = CASES[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArchiveError) as raised:
        read_bundle(build(), source="evil.tar.gz", limits=SMALL)
    err = raised.value
    assert problem in err.problem, err
    if member_name:
        assert err.member == member_name
    assert str(err).startswith("evil.tar.gz")
    assert list(tmp_path.iterdir()) == []  # nothing extracted


def test_a_real_bomb_stops_at_the_bound_without_inflating() -> None:
    # 200 MiB of zeros compress to ~200 KiB; the default bounds stop long before
    data = tar_gz([zeros_member(f"{TOP}/z{i}", 10 * 1024 * 1024) for i in range(20)])
    assert len(data) < 1024 * 1024
    with pytest.raises(ArchiveError, match="decompresses to more than"):
        read_bundle(data, source="bomb.tar.gz")
