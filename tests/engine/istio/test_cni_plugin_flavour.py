"""The CNI plugin flavour: the same rules as istio-init, plus the status ports it always excludes."""

from __future__ import annotations

from meshviz.engine.core.model import Family
from meshviz.engine.istio import CaptureSettings, Flavour, effective_settings, generate
from meshviz.engine.netfilter.render import rule_text


def _inbound(flavour: Flavour, **values: object) -> list[str]:
    capture = generate(CaptureSettings.from_values(**values), flavour)
    rs = capture.ruleset(Family.IPV4)
    assert rs is not None
    table = rs.table("nat")
    assert table is not None
    chain = table.chain("ISTIO_INBOUND")
    assert chain is not None
    return [rule_text(r) for r in chain.rules]


def test_status_ports_are_appended_after_the_pods_own_exclusions_without_duplicates() -> None:
    s = CaptureSettings.from_values(inbound_ports_include="*", inbound_ports_exclude="22,15021")
    assert effective_settings(s, "cni-plugin").inbound_ports_exclude == (22, 15021, 15020, 15090)
    assert effective_settings(s, "capture").inbound_ports_exclude == (22, 15021)


def test_istio_init_does_not_add_them() -> None:
    rules = _inbound("capture", inbound_ports_include="*")
    assert rules == ["-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN", "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"]


def test_the_plugin_excludes_them_from_inbound_capture() -> None:
    rules = _inbound("cni-plugin", inbound_ports_include="*")
    assert "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN" in rules
    assert rules[-1] == "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"


def test_the_status_ports_are_a_knob() -> None:
    rules = _inbound("cni-plugin", inbound_ports_include="*", cni_status_ports="15020")
    assert "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN" in rules
    assert not any("15090" in r for r in rules)


def test_generated_settings_are_the_effective_ones() -> None:
    capture = generate(CaptureSettings.cni_plugin_defaults(), "cni-plugin")
    assert capture.settings.inbound_ports_exclude == (15020, 15021, 15090)
    assert any("always excluded" in n for n in capture.notes)
