"""Fuzzed bytes and mutated archives never make the bundle or bug-report readers raise anything but ArchiveError
(which names the member and the problem): no crash reaches the web app as a 500."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshviz.engine.evidence.archive import ArchiveError
from meshviz.engine.evidence.bugreport import read_bug_report
from meshviz.engine.evidence.bundle import read_bundle
from tests.kube.fake_apiserver import istio_pod

from .archives import bundle_members, member, tar_gz

VALID_BUNDLE = tar_gz(bundle_members({"pod.json": json.dumps(istio_pod("hr2", tproxy=False))}))
VALID_REPORT = tar_gz(
    [
        member(
            "bug-report/cluster/k8s-resources",
            json.dumps({"kind": "List", "items": [istio_pod("hr2", False)]}).encode(),
        )
    ]
)


def _only_archive_errors(data: bytes) -> None:
    for reader in (read_bundle, read_bug_report):
        try:
            reader(data, source="fuzz.tar.gz")
        except ArchiveError as exc:
            assert exc.problem
        except ValueError as exc:  # pragma: no cover - a failure: anything else is a bug
            raise AssertionError(f"{reader.__name__} raised {type(exc).__name__}: {exc}") from exc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _only_archive_errors(data)
    _only_archive_errors(b"\x1f\x8b" + data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([VALID_BUNDLE, VALID_REPORT]),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_archives(base: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    _only_archive_errors(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([VALID_BUNDLE, VALID_REPORT]), st.integers(1, 400))
def test_truncated_archives(base: bytes, cut: int) -> None:
    _only_archive_errors(base[: max(len(base) - cut, 0)])
