"""A REDIRECT pod cannot show the client IP: the verified fix is switching to TPROXY."""

from meshviz.engine.fix.plans import fix

from .helpers import CLIENT, PORT
from .test_compare_redirect_tproxy import redirect_evidence


def test_switch_to_tproxy_is_offered_verified_with_the_annotation() -> None:
    r = fix(redirect_evidence(), client=CLIENT, port=PORT)
    assert r.before["app_peer_ip"] == "127.0.0.6"
    assert r.works and r.after is not None and r.after["app_peer_ip"] == "10.1.1.1"
    (rep,) = r.repairs
    assert rep.key == "switch-to-tproxy"
    assert "sidecar.istio.io/interceptionMode" in rep.artifacts[0].content
    patched = r.to_dict()["patched"]
    assert any("-j TPROXY" in ln and "--on-port 15006" in ln for ln in patched["iptables_save"].splitlines())
    assert patched["proxy_uid"] == 0 and patched["proxy_gid"] == 1337
    assert patched["ip_rule"] == ["rule add pref 32765 from all fwmark 0x539 lookup 133"]
    assert "route replace local default dev lo table 133 scope host" in patched["ip_route"]
    assert {a["key"] for a in r.to_dict()["alternatives"]} == {"x-forwarded-for", "proxy-protocol"}
