"""Which listener's socket accepts a connection: exact address before the wildcard; only active, bound listeners."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from meshviz.engine.envoy import Address, EnvoyConfig, Listener, listener_for, parse_config_dump, select_listener

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


@cache
def load(name: str) -> EnvoyConfig:
    return parse_config_dump((FIXTURES / name).read_text(), name).config


def lst(name: str, ip: str, port: int, **kw: object) -> Listener:
    return Listener(name=name, address=Address("socket", ip, port, bool(kw.pop("ipv4_compat", False))), **kw)  # type: ignore[arg-type]


def test_exact_address_wins_over_wildcard() -> None:
    config = EnvoyConfig(listeners=(lst("any", "0.0.0.0", 8080), lst("exact", "10.0.0.5", 8080)))
    assert listener_for(config, "10.0.0.5", 8080) is config.listeners[1]
    assert listener_for(config, "10.0.0.6", 8080) is config.listeners[0]
    assert listener_for(config, "10.0.0.5", 8081) is None


def test_bind_to_port_false_never_accepts_directly() -> None:
    config = EnvoyConfig(listeners=(lst("svc", "10.96.0.1", 443, bind_to_port=False),))
    sel = select_listener(config, "10.96.0.1", 443)
    assert sel.listener is None
    assert "connection refused" in sel.explanation[0]
    assert "bind_to_port: false" in sel.explanation[1] and "svc" in sel.explanation[1]


def test_failed_warming_and_draining_listeners_are_not_used() -> None:
    config = EnvoyConfig(
        listeners=(
            lst("broken", "0.0.0.0", 15006, state="error", error_detail="bad lua"),
            lst("new", "0.0.0.0", 15001, state="warming"),
            lst("old", "0.0.0.0", 15002, state="draining"),
        )
    )
    for port, word in ((15006, "bad lua"), (15001, "warming"), (15002, "draining")):
        sel = select_listener(config, "10.0.0.5", port)
        assert sel.listener is None
        assert word in sel.explanation[0]


def test_ipv6_wildcard_and_ipv4_compat() -> None:
    v6 = EnvoyConfig(listeners=(lst("v6", "::", 15001),))
    assert listener_for(v6, "fd00::5", 15001) is v6.listeners[0]
    assert listener_for(v6, "10.0.0.5", 15001) is None
    compat = EnvoyConfig(listeners=(lst("dual", "::", 15001, ipv4_compat=True),))
    assert listener_for(compat, "10.0.0.5", 15001) is compat.listeners[0]


def test_geo_dump_15006_is_refused_because_virtual_inbound_failed() -> None:
    c = load("istio-1.18-sidecar-geo-virtualInbound-error-state.json")
    sel = select_listener(c, "172.16.188.31", 15006)
    assert sel.listener is None
    assert sel.explanation[0].startswith("listener virtualInbound (0.0.0.0:15006) failed to load (error_state)")
    assert "LuaValidationError" in sel.explanation[0]
    assert "connection refused" in sel.explanation[-1]
    vo = listener_for(c, "172.16.188.31", 15001)
    assert vo is not None and vo.name == "virtualOutbound"
    # Static listeners (prometheus 15090, health 15021) own sockets too.
    stats = listener_for(c, "172.16.188.31", 15090)
    assert stats is not None and stats.origin == "static"


def test_per_service_listeners_do_not_own_sockets() -> None:
    c = load("istio-1.18-sidecar-geo-virtualInbound-error-state.json")
    assert listener_for(c, "10.68.144.213", 8500) is None
    assert listener_for(c, "10.68.144.213", 8500, handed_off_from=c.listener("virtualOutbound")) is c.listener(
        "10.68.144.213_8500"
    )
