"""use_original_dst: hand-off to the listener whose address is the original destination, else stay."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from meshviz.engine.envoy import Address, EnvoyConfig, Listener, handoff, parse_config_dump, select_handoff

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


@cache
def load(name: str) -> EnvoyConfig:
    return parse_config_dump((FIXTURES / name).read_text(), name).config


def lst(name: str, ip: str, port: int, **kw: object) -> Listener:
    return Listener(name=name, address=Address("socket", ip, port), **kw)  # type: ignore[arg-type]


VIRTUAL = lst("virtualOutbound", "0.0.0.0", 15001, use_original_dst=True)
EXACT = lst("10.96.0.10_53", "10.96.0.10", 53, bind_to_port=False)
WILD = lst("0.0.0.0_53", "0.0.0.0", 53, bind_to_port=False)
CONFIG = EnvoyConfig(listeners=(VIRTUAL, WILD, EXACT))


def test_exact_original_destination_first() -> None:
    assert handoff(CONFIG, VIRTUAL, ("10.96.0.10", 53)) is EXACT


def test_then_wildcard_of_the_port() -> None:
    sel = select_handoff(CONFIG, VIRTUAL, ("10.96.0.99", 53))
    assert sel.listener is WILD
    assert "wildcard address 0.0.0.0:53" in sel.explanation[-1]


def test_no_listener_for_the_destination_stays_on_the_accepting_listener() -> None:
    sel = select_handoff(CONFIG, VIRTUAL, ("1.2.3.4", 443))
    assert sel.listener is None
    assert "stays on virtualOutbound" in sel.explanation[-1]


def test_listener_without_use_original_dst_does_not_hand_off() -> None:
    inbound = lst("virtualInbound", "0.0.0.0", 15006)
    sel = select_handoff(CONFIG, inbound, ("10.96.0.10", 53))
    assert sel.listener is None
    assert "no use_original_dst" in sel.explanation[0]


def test_failed_target_listener_is_skipped_and_explained() -> None:
    broken = lst("10.96.0.10_53", "10.96.0.10", 53, bind_to_port=False, state="error", error_detail="boom")
    config = EnvoyConfig(listeners=(VIRTUAL, WILD, broken))
    sel = select_handoff(config, VIRTUAL, ("10.96.0.10", 53))
    assert sel.listener is WILD
    assert "failed to load" in sel.explanation[0] and "boom" in sel.explanation[0]


def test_istio_1_2_inbound_goes_through_the_virtual_listener() -> None:
    """Before 15006, inbound traffic was redirected to 15001 and handed off to pod_ip:port listeners."""
    c = load("istio-1.2-sidecar-ratings-legacy-virtual-listener.json")
    virtual = c.listener("virtual")
    assert virtual is not None
    target = handoff(c, virtual, ("172.30.144.156", 9080))
    assert target is not None and target.name == "172.30.144.156_9080" and not target.bind_to_port
    # Outbound HTTP to any 9080 service: the wildcard listener.
    other = handoff(c, virtual, ("172.21.0.99", 9080))
    assert other is not None and other.name == "0.0.0.0_9080"


def test_echo_dump_exact_pod_listener_beats_wildcard() -> None:
    c = load("istio-testframework-sidecar-echo-a-legacy-virtual-listener.json")
    virtual = c.listener("virtual")
    assert virtual is not None
    assert c.listener("0.0.0.0_8080") is not None
    target = handoff(c, virtual, ("10.40.3.59", 8080))
    assert target is not None and target.name == "10.40.3.59_8080"


def test_geo_outbound_handoff_to_service_listener() -> None:
    c = load("istio-1.18-sidecar-geo-virtualInbound-error-state.json")
    vo = c.listener("virtualOutbound")
    assert vo is not None
    target = handoff(c, vo, ("10.68.227.119", 27017))
    assert target is not None and target.name == "10.68.227.119_27017"
    wildcard = handoff(c, vo, ("10.68.1.1", 9411))
    assert wildcard is not None and wildcard.name == "0.0.0.0_9411"
    assert handoff(c, vo, ("8.8.8.8", 4444)) is None
