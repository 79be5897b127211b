"""Named regression scenarios: the pods on which the differential kernel fuzzer once reported a disagreement.

Each one disagreed in development because the kernel-side observation was wrong, not the engine - and each is
exactly the kind of pod the engine used to get wrong before the pod profile (a renamed interface, IPv6, an
unmarked original_src, a loopback-sourced reply, a second interface).  They stay pinned so that neither the
oracle nor the engine can regress on them."""

from __future__ import annotations

import json

import pytest

from .conftest import require_netns
from .fuzz import Scenario, regression, run

pytestmark = pytest.mark.kernel

# The knobs added to the generator later are pinned to what these seeds were drawn with.
PINNED = {"flavour": "capture", "exclude_iface": False, "other_backend": "none"}

REGRESSIONS: dict[str, Scenario] = {
    # An escaped SYN-ACK from Envoy's own re-captured socket (original_src without its mark) has the application's
    # source port too: app_would_see is only what the application's listener answered (counted by socket).
    "ipv6 tproxy unmarked original_src to loopback: the reply that escapes is Envoy's, app_would_see null": regression(
        200029, **PINNED
    ),
    "ipv6 tproxy unmarked original_src, dual-stack on ens4: the application's own reply escapes": regression(
        200052, **PINNED
    ),
    "ipv6 tproxy without policy routes on vethab12cd with a second interface": regression(200057, **PINNED),
    # The client namespace drops an IPv6 packet with a loopback source before any hook: escapes are counted in
    # the pod, where they leave.
    "ipv6 tproxy shadowed policy route, loopback target, second interface: the escape is counted where it leaves": (
        regression(200062, **PINNED)
    ),
    "ipv6 tproxy route only, unmarked original_src on ens4": regression(200063, **PINNED),
    "ipv6 tproxy rule only, loopback target, postgresql port": regression(200076, **PINNED),
    # Interface packet counters also count neighbour discovery: a second interface's tx_packets said it escaped.
    "ipv4 tproxy shadowed route, loopback target on veth with net2: the kernel refuses the loopback source (503 UF)": (
        regression(200110, **PINNED)
    ),
    "ipv4 tproxy rule only, unmarked original_src on net1": regression(200144, **PINNED),
    # Engine bugs the fuzzer found: an outbound connection's SYN leaves the pod, and the destination's SYN-ACK is
    # marked by ISTIO_DIVERT (ESTABLISHED) and then dropped by the strict/loose reverse-path filter because
    # src_valid_mark=1 makes the reverse lookup follow the mark to `local default dev lo`.  The engine used to
    # assume a connection that left the pod was answered; it now simulates the answer's way back in.
    "outbound from a tproxy pod with rp_filter=1 and src_valid_mark=1: the reply is dropped by rp_filter": regression(
        1100005
    ),
    "outbound from a tproxy pod with rp_filter=2 and src_valid_mark=1 (nft + a legacy filter table)": regression(
        1100089
    ),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_fuzzer_regression_scenario_agrees_with_the_kernel(name: str) -> None:
    s = REGRESSIONS[name]
    require_netns(s.backend)
    o = run(s)
    assert not o.diff, (
        f"{name}\n{s.label()}\nkernel: {json.dumps(o.kernel)}\nengine: {json.dumps(o.engine)}\n{o.summary}"
    )
