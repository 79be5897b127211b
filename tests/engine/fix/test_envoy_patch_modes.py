"""Envoy as Istio configures it per mode: TPROXY adds transparent listeners and original_src (mark 1337)."""

from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.envoy.patch import to_mode

from .helpers import ENVOY_TPROXY


def filters(text: str, name: str) -> list[str]:
    cfg = parse_config_dump(text).config
    lst = next(x for x in cfg.listeners if x.name == name and x.state == "active")
    return [f.kind for f in lst.listener_filters]


def test_redirect_removes_original_src_and_transparent_and_tproxy_restores_them() -> None:
    red = to_mode(ENVOY_TPROXY, "REDIRECT")
    cfg = parse_config_dump(red.text).config
    assert cfg.interception_mode == "REDIRECT"
    assert not any(k.endswith("original_src") for k in filters(red.text, "virtualInbound"))
    assert all(not lst.transparent for lst in cfg.listeners if lst.bind_to_port)
    back = to_mode(red.text, "TPROXY")
    ks = filters(back.text, "virtualInbound")
    assert ks.index("envoy.filters.listener.original_src") == ks.index("envoy.filters.listener.original_dst") + 1
    cfg2 = parse_config_dump(back.text).config
    assert cfg2.interception_mode == "TPROXY"
    assert any("original_src" in c for c in back.changes)
