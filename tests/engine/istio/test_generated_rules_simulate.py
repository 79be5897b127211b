"""The generated rulesets are the engine's own model: packets go through them like through parsed evidence."""

from __future__ import annotations

from dataclasses import replace

from meshviz.engine.core.model import Socket
from meshviz.engine.core.trace import Disposition
from meshviz.engine.istio import CaptureSettings, Flavour, generate
from meshviz.engine.pipeline.load import load_snapshot
from meshviz.engine.sim.snapshot import Snapshot

from ..helpers import CLIENT, POD, ROUTES, listener, receive, send, tcp


def _pod(settings: CaptureSettings, *sockets: Socket, flavour: Flavour = "capture") -> Snapshot:
    capture = generate(settings, flavour)
    ip_rule = "".join(f"ip {r}\n" for r in capture.ip_rule) or None
    routes = ROUTES + "".join(f"ip {r}\n" for r in capture.ip_route)
    loaded = load_snapshot(ip_rule=ip_rule, ip_route=routes, pod_ip=POD, sockets=tuple(sockets) or None)
    assert not loaded.errors, [str(e) for e in loaded.errors]
    return replace(loaded.snapshot, rulesets=capture.rulesets)


def test_default_injection_sends_the_apps_outbound_to_envoy_but_not_envoys_own() -> None:
    snap = _pod(CaptureSettings.istio_init_defaults())
    app = send(snap, tcp("0.0.0.0", 0, "10.96.1.1", 80), uid=1000, gid=1000)
    assert app.final_packet is not None
    assert (str(app.final_packet.dst), app.final_packet.dport) == ("127.0.0.1", 15001)
    envoy = send(snap, tcp("0.0.0.0", 0, "10.96.1.1", 80), uid=1337, gid=1337)
    assert envoy.final_packet is not None
    assert (str(envoy.final_packet.dst), envoy.final_packet.dport) == ("10.96.1.1", 80)


def test_default_injection_sends_inbound_to_15006_except_the_excluded_ports() -> None:
    snap = _pod(CaptureSettings.istio_init_defaults())
    t = receive(snap, tcp(CLIENT, 40000, POD, 8080))
    assert t.final_packet is not None and t.final_packet.dport == 15006
    t = receive(snap, tcp(CLIENT, 40000, POD, 15021))
    assert t.final_packet is not None and t.final_packet.dport == 15021


def test_cni_plugin_excludes_its_status_ports_from_inbound_capture() -> None:
    snap = _pod(CaptureSettings.from_values(inbound_ports_include="*"), flavour="cni-plugin")
    t = receive(snap, tcp(CLIENT, 40000, POD, 15090))
    assert t.final_packet is not None and t.final_packet.dport == 15090


def test_tproxy_delivers_inbound_to_envoys_transparent_listener_keeping_the_client_address() -> None:
    settings = CaptureSettings.from_values(interception_mode="TPROXY", inbound_ports_include="*")
    snap = _pod(settings, listener(15006, transparent=True, name="envoy inbound"), listener(8080, name="app"))
    t = receive(snap, tcp(CLIENT, 40000, POD, 8080))
    assert t.disposition == Disposition.ACCEPTED_TO_SOCKET
    assert t.socket is not None and t.socket.startswith("envoy inbound")
    assert t.final_packet is not None
    assert (str(t.final_packet.src), t.final_packet.dport, t.final_packet.mark) == (CLIENT, 8080, 1337)
