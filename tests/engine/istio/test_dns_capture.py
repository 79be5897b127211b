"""DNS capture: limited to resolv.conf's servers, or every port-53 packet; off without either."""

from __future__ import annotations

from meshviz.engine.core.model import Family
from meshviz.engine.istio import CaptureSettings, generate

from .util import chain_rules


def test_redirect_dns_without_servers_is_off_and_says_so() -> None:
    capture = generate(CaptureSettings.from_values(redirect_dns=True))
    assert "ISTIO_OUTPUT_DNS" not in capture.restore_text[Family.IPV4]
    assert any("DNS capture is off" in n for n in capture.notes)


def test_capture_all_dns_redirects_every_port_53_packet() -> None:
    capture = generate(CaptureSettings.from_values(redirect_dns=True, capture_all_dns=True, enable_ipv6=True))
    rules = chain_rules(capture.rulesets)
    for fam in ("ipv4", "ipv6"):
        assert rules[fam, "nat", "ISTIO_OUTPUT_DNS"] == [
            "-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053",
            "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-ports 15053",
        ]
        assert rules[fam, "raw", "ISTIO_INBOUND"] == ["-A ISTIO_INBOUND -p udp --sport 53 -j CT --zone 1"]


def test_servers_of_one_family_only_jump_in_that_family() -> None:
    capture = generate(CaptureSettings.from_values(redirect_dns=True, dns_servers_v4="10.96.0.10", enable_ipv6=True))
    rules = chain_rules(capture.rulesets)
    assert "-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS" in rules["ipv4", "nat", "ISTIO_OUTPUT"]
    assert "-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS" not in rules["ipv6", "nat", "ISTIO_OUTPUT"]
    assert ("ipv6", "raw", "ISTIO_INBOUND") not in rules


def test_legacy_redirect_dns_needs_no_servers() -> None:
    """1.23 still wrote the UDP jumps and the proxy's conntrack zones without a server."""
    capture = generate(CaptureSettings.from_values(redirect_dns=True), "legacy-1.23")
    rules = chain_rules(capture.rulesets)
    assert rules["ipv4", "nat", "OUTPUT"] == ["-A OUTPUT -p tcp -j ISTIO_OUTPUT", "-A OUTPUT -p udp -j ISTIO_OUTPUT"]
    assert (
        "-A ISTIO_OUTPUT -p udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1"
        in rules["ipv4", "raw", "ISTIO_OUTPUT"]
    )
