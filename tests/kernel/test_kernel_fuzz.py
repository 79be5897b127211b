"""The differential kernel fuzzer's fixed-seed slice: 64 random pods, built for real and simulated, whose full
verdicts must agree field by field (see tests/kernel/fuzz.py; `make kernel-fuzz N=1000 SEED=...` runs more)."""

from __future__ import annotations

import json

import pytest

from .conftest import require_netns
from .fuzz import draw, run

pytestmark = pytest.mark.kernel

SEED = 7
SLICE = [draw(SEED * 100_000 + i) for i in range(64)]


@pytest.mark.parametrize("scenario", SLICE, ids=[s.label() for s in SLICE])
def test_engine_verdict_equals_the_kernels_for_a_random_pod(scenario) -> None:  # type: ignore[no-untyped-def]
    require_netns(scenario.backend)
    o = run(scenario)
    assert not o.diff, (
        f"{scenario.label()}\nkernel: {json.dumps(o.kernel)}\nengine: {json.dumps(o.engine)}\n{o.summary}\n"
        f"raw: {json.dumps(o.raw, default=str)[:3000]}"
    )


def test_the_slice_covers_the_knobs_that_make_pods_differ() -> None:
    assert len(SLICE) >= 60
    assert {s.family for s in SLICE} == {"ipv4", "ipv6"}
    assert {s.mode for s in SLICE} == {"REDIRECT", "TPROXY"}
    assert {s.backend for s in SLICE} == {"legacy", "nft"}
    assert len({s.iface for s in SLICE}) == 4
    assert any(s.extra_iface for s in SLICE)
    assert len({(s.proxy_uid, s.proxy_gid) for s in SLICE}) >= 4
    assert {s.policy for s in SLICE} >= {"istio", "none", "rule_only", "route_only", "shadowed"}
    assert {s.bind for s in SLICE} >= {"passthrough", "original_src", "original_src_nomark", "none"}
    assert {s.target for s in SLICE} == {"original_dst", "loopback", "pod_ip"}
