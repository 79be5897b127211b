"""The differential kernel fuzzer on pods whose interception is Istio's nftables backend: 24 random pods (mode,
inbound ports, proxy uid/gid, mark and table, interface names, policy routes, Envoy's bind and target,
sysctls, inbound and outbound), the goldens loaded with `nft -f`, the engine fed `nft list ruleset`; the full
verdicts must agree field by field (`python -m tests.kernel.fuzz --nft --n N` runs more)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from . import netns
from .conftest import require_netns
from .fuzz import draw_nft, run

pytestmark = pytest.mark.kernel

SEED = 11
SLICE = [draw_nft(SEED * 100_000 + i) for i in range(24)]


@pytest.fixture(autouse=True)
def _own_namespace_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(netns, "NS_PREFIX", "mvnft")
    yield


@pytest.mark.parametrize("scenario", SLICE, ids=[s.label() for s in SLICE])
def test_engine_verdict_equals_the_kernels_for_a_random_nft_pod(scenario) -> None:  # type: ignore[no-untyped-def]
    require_netns("nft")
    o = run(scenario)
    assert not o.diff, (
        f"{scenario.label()}\nkernel: {json.dumps(o.kernel)}\nengine: {json.dumps(o.engine)}\n{o.summary}\n"
        f"raw: {json.dumps(o.raw, default=str)[:3000]}"
    )


def test_the_nft_slice_covers_both_modes_and_directions() -> None:
    assert all(s.native_nft for s in SLICE)
    assert {s.family for s in SLICE} == {"ipv4", "ipv6"}
    assert {s.mode for s in SLICE} == {"REDIRECT", "TPROXY"}
    assert {s.direction for s in SLICE} == {"inbound", "outbound"}
    assert {s.inbound for s in SLICE} == {"all", "other"}
