"""The nftables generators beyond the goldens: flavours, IPv6, the builder's index rules, the resulting tables."""

from __future__ import annotations

import pytest

from meshviz.engine.istio import CaptureSettings, SettingsError
from meshviz.engine.istio.nft_ambient import AmbientSettings, generate_ambient_host, generate_ambient_inpod
from meshviz.engine.istio.nft_builder import (
    IndexPolicy,
    NftChain,
    NftOperation,
    NftRule,
    NftState,
    NftTable,
    concat,
    rule_operations,
)
from meshviz.engine.istio.nft_generator import MANGLE, NAT, generate_nftables


def test_legacy_layout_has_no_nftables_backend() -> None:
    with pytest.raises(SettingsError) as e:
        generate_nftables(CaptureSettings(), "legacy-1.23")
    assert e.value.issue.name == "flavour"


def test_cni_plugin_flavour_excludes_its_status_ports_before_capturing_inbound() -> None:
    capture = generate_nftables(CaptureSettings.cni_plugin_defaults(), "cni-plugin")
    inbound = capture.state.rules(NAT, "istio-inbound")
    assert inbound == (
        "meta l4proto tcp tcp dport 15008 counter return",
        "meta l4proto tcp tcp dport 15020 counter return",
        "meta l4proto tcp tcp dport 15021 counter return",
        "meta l4proto tcp tcp dport 15090 counter return",
        "meta l4proto tcp counter jump istio-in-redirect",
    )
    assert capture.settings.inbound_ports_exclude == (15020, 15021, 15090)


def test_ipv6_rules_are_left_out_without_ipv6_and_written_with_it() -> None:
    values = {"outbound_ip_ranges_include": "10.0.0.0/8,2001:db8::/32", "interception_mode": "TPROXY"}
    v4_only = generate_nftables(CaptureSettings.from_values(**values, inbound_ports_include="*"))
    dual = generate_nftables(CaptureSettings.from_values(**values, inbound_ports_include="*", enable_ipv6=True))
    assert "ip6 " not in v4_only.script
    assert "ip6 daddr 2001:db8::/32 counter jump istio-redirect" in dual.script
    assert "tproxy ip6 to :15006" in dual.script
    assert dual.ip_addr == ("-6 addr add ::6/128 dev lo",)
    assert dual.ip_rule == ("rule add fwmark 1337 lookup 133", "-6 rule add fwmark 1337 lookup 133")


def test_tproxy_inbound_chain_after_the_insertions_returns_before_it_diverts() -> None:
    capture = generate_nftables(CaptureSettings.from_values(interception_mode="TPROXY", inbound_ports_include="*"))
    assert capture.state.rules(MANGLE, "istio-inbound") == (
        "meta l4proto tcp mark 1337 counter return",
        "iifname lo meta l4proto tcp ip saddr 127.0.0.6/32 counter return",
        "iifname lo meta l4proto tcp mark != 1338 counter return",
        "meta l4proto tcp ct state related,established counter jump istio-divert",
        "meta l4proto tcp counter jump istio-tproxy",
    )
    assert capture.tables == ("istio-proxy-nat", "istio-proxy-mangle")


def test_a_table_without_rules_is_not_written() -> None:
    capture = generate_nftables(CaptureSettings())
    assert capture.tables == ("istio-proxy-nat",)
    assert "istio-proxy-raw" not in capture.script


def test_an_insertion_into_an_empty_chain_or_past_its_end_becomes_an_append() -> None:
    rules = [
        NftRule("t", "c", "a", index=0),  # empty chain: appended under both policies
        NftRule("t", "c", "b", index=5),  # past the end: appended only when clamping
        NftRule("t", "c", "c", index=0),
    ]
    clamped = [op.text() for op in rule_operations(rules, policy=IndexPolicy.CLAMP)]
    assert clamped == ["add rule inet t c a", "add rule inet t c b", "insert rule inet t c index 0 c"]
    kept = [op.text() for op in rule_operations(rules, policy=IndexPolicy.EMPTY_ONLY)]
    assert kept[1] == "insert rule inet t c index 5 b"


def test_state_places_rules_as_nft_does_and_reports_what_nft_would_refuse() -> None:
    ops = [
        NftOperation("add", NftTable("t")),
        NftOperation("add", NftChain("t", "c")),
        NftOperation("add", NftRule("t", "c", "first")),
        NftOperation("add", NftRule("t", "c", "last")),
        NftOperation("insert", NftRule("t", "c", "middle", index=1)),
        NftOperation("add", NftRule("t", "c", "after-first", index=0)),
        NftOperation("insert", NftRule("t", "c", "head")),
        NftOperation("insert", NftRule("t", "c", "nowhere", index=7)),
        NftOperation("add", NftRule("t", "missing", "x")),
    ]
    state = NftState().apply(ops)
    assert state.rules("t", "c") == ("head", "first", "after-first", "middle", "last")
    assert len(state.errors) == 2
    assert "index 7" in state.errors[0] and "no such chain" in state.errors[1]
    state.apply([NftOperation("flush", NftTable("t"))])
    assert state.rules("t", "c") == ()


def test_concat_keeps_a_parameters_trailing_blank() -> None:
    assert concat("mark and 0xfff ", "!=", "0x539") == "mark and 0xfff  != 0x539"


def test_ambient_routing_sends_the_connmark_to_lo_in_both_families() -> None:
    inpod = generate_ambient_inpod(AmbientSettings(enable_ipv6=True))
    assert inpod.ip_rule == (
        "rule add fwmark 0x111/0xfff pref 32764 lookup 100",
        "-6 rule add fwmark 0x111/0xfff pref 32764 lookup 100",
    )
    assert inpod.ip_route == ("route add local 0.0.0.0/0 dev lo table 100", "-6 route add local ::/0 dev lo table 100")


def test_ambient_pod_dns_override_wins_over_the_agent_setting() -> None:
    assert AmbientSettings(redirect_dns=False, dns_proxy="enabled").dns_captured
    assert not AmbientSettings(redirect_dns=True, dns_proxy="disabled").dns_captured
    off = generate_ambient_inpod(AmbientSettings(redirect_dns=True, dns_proxy="disabled"))
    assert "15053" not in off.script and "istio-ambient-raw" not in off.script


def test_ambient_default_probe_address_is_the_agents() -> None:
    inpod = generate_ambient_inpod(AmbientSettings(enable_ipv6=True))
    assert "ip6 saddr fd16:9254:7127:1337:ffff:ffff:ffff:ffff counter accept" in inpod.script


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"dns_proxy": "sometimes"}, "dns_proxy"),
        ({"host_probe_snat_v4": "not-an-ip"}, "host_probe_snat_v4"),
        ({"virtual_interfaces": "bad/name"}, "virtual_interfaces"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_ambient_settings_name_the_malformed_value(values: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as e:
        AmbientSettings.from_values(**values)
    assert e.value.issue.name == name


def test_ambient_host_rule_needs_a_numeric_kubelet_uid() -> None:
    with pytest.raises(SettingsError) as e:
        generate_ambient_host(AmbientSettings(), "kubelet")
    assert e.value.issue.name == "kubelet_uid"


def test_native_nftables_flag_marks_the_pod_as_programmed_with_nftables() -> None:
    from meshviz.engine.istio import settings_from_init_args

    assert settings_from_init_args("-p 15001 -u 1337 --native-nftables").nftables
    plain = settings_from_init_args("-p 15001 -u 1337")
    assert not plain.nftables and plain.to_dict()["nftables"] is False


def test_a_jump_to_a_chain_istio_does_not_create_is_reported_as_a_problem() -> None:
    """IPv6 nameservers on a pod without IPv6: Istio adds the DNS jumps but no IPv6 DNS rule, so the jumped-to
    chains are never declared and nft refuses the whole transaction."""
    broken = generate_nftables(CaptureSettings.from_values(redirect_dns=True, dns_servers_v6="fd00::a"))
    assert [p.split(":")[0] for p in broken.problems] == ["istio-proxy-nat istio-output", "istio-proxy-raw prerouting"]
    assert "jump istio-output-dns" in broken.problems[0]
    fine = generate_nftables(CaptureSettings.from_values(redirect_dns=True, dns_servers_v6="fd00::a", enable_ipv6=True))
    assert fine.problems == ()


def test_ambient_pod_annotations_override_the_agent_as_the_node_agent_reads_them() -> None:
    from meshviz.engine.istio.nft_ambient import ambient_settings_from_pod

    pod = {
        "metadata": {
            "annotations": {
                "ambient.istio.io/bypass-inbound-capture": "true",
                "ambient.istio.io/dns-capture": "False",
                "istio.io/reroute-virtual-interfaces": " fake1s0f0, ,fake1s0f1",
            }
        }
    }
    settings, notes = ambient_settings_from_pod(pod, AmbientSettings(redirect_dns=True))
    assert (settings.ingress_mode, settings.dns_proxy, settings.virtual_interfaces) == (
        True,
        "disabled",
        ("fake1s0f0", "fake1s0f1"),
    )
    assert notes == () and not settings.dns_captured
    ignored, notes = ambient_settings_from_pod({"metadata": {"annotations": {"ambient.istio.io/dns-capture": "yes"}}})
    assert ignored.dns_proxy == "unset"
    assert notes == ("ambient.istio.io/dns-capture='yes' is not a boolean: the node agent ignores it",)
