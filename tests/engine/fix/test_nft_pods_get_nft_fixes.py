"""Pods whose Istio capture is native nftables: the comparison's other mode and the fix's repairs are nft
(Istio's nft generator, nft commands and `nft -f` fragments), applied to the pod's nft evidence, re-simulated
through the nft simulator, and offered only when the re-simulation reaches the goal."""

from __future__ import annotations

import pytest

from meshviz.engine.envoy.patch import to_mode
from meshviz.engine.fix.compare import compare
from meshviz.engine.fix.nft import settings_from_nft
from meshviz.engine.fix.plans import fix
from meshviz.engine.istio.nft_generator import generate_nftables
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.pipeline.evidence import Evidence, story_for

from .helpers import (
    CLIENT,
    ENVOY_TPROXY,
    FIX,
    IP_ROUTE,
    IP_ROUTE_NONE,
    IP_RULE,
    POD,
    PORT,
    TPROXY_RULES,
    tproxy_evidence,
)

LISTED = FIX / "nftables-listed"
GOLDENS = FIX / "istio-nftables/capture"
REDIRECT_NFT = (LISTED / "capture-inbound-ports-wildcard.list").read_text()
TPROXY_NFT = (LISTED / "capture-inbound-ports-wildcard-tproxy.list").read_text()
CLIENT_IP = CLIENT.split(":")[0]

#: kube-proxy's own nft table: the fixes must keep it.
KUBE_PROXY = """table ip kube-proxy {
	chain services {
		ip daddr 10.96.0.10 tcp dport 53 counter packets 0 bytes 0 accept
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		counter packets 0 bytes 0 jump services
	}
}
"""
#: kube-proxy-style filter rules in iptables-nft (a mixed pod): the fixes must leave them as they are.
KUBE_FIREWALL = (
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n"
    "-A INPUT -j KUBE-FIREWALL\n-A KUBE-FIREWALL -p tcp -m tcp --dport 9999 -j DROP\nCOMMIT\n"
)


def without(text: str, fragment: str) -> str:
    kept = [line for line in text.splitlines() if fragment not in line]
    assert len(kept) == len(text.splitlines()) - 1, f"{fragment!r} is not on exactly one line"
    return "\n".join(kept) + "\n"


def nft_evidence(nftables: str, **kw: object) -> Evidence:
    base: dict[str, object] = {
        "iptables": "",
        "nftables": nftables,
        "pod_ip": POD,
        "envoy": ENVOY_TPROXY,
        "app_ports": (PORT,),
        "ip_rule": IP_RULE,
        "ip_route": IP_ROUTE,
    }
    base.update(kw)
    return Evidence(**base)  # type: ignore[arg-type]


def redirect_pod(nftables: str = REDIRECT_NFT, **kw: object) -> Evidence:
    return nft_evidence(nftables, envoy=to_mode(ENVOY_TPROXY, "REDIRECT").text, ip_rule=None, ip_route=None, **kw)


def kinds(result: dict) -> set[str]:
    return {a["kind"] for p in result["patches"] for a in p["artifacts"]}


#: What `nft list ruleset` cannot give back: the host bits of a prefix (nft lists 127.0.0.0/8 for 127.0.0.1/8) and
#: an IPv6 address's spelling (::7f00:35 for ::127.0.0.53).  The same rules, written differently.
SPELLING = {"host-ipv4-loopback-cidr": ("127.0.0.1/8", "127.0.0.0/8"), "dns-uid-gid": ("::127.0.0.53", "::7f00:35")}
LISTED_CAPTURE = sorted(
    p.name.removeprefix("capture-").removesuffix(".list")
    for p in LISTED.glob("capture-*.list")
    if (GOLDENS / (p.name.removeprefix("capture-").removesuffix(".list") + ".golden")).exists()
)


def test_every_listed_capture_golden_is_checked() -> None:
    assert len(LISTED_CAPTURE) == 24


@pytest.mark.parametrize("golden", LISTED_CAPTURE)
def test_settings_read_from_a_listed_istio_nft_pod_regenerate_its_golden(golden: str) -> None:
    listed = parse_nftables((LISTED / f"capture-{golden}.list").read_text()).ruleset
    settings = settings_from_nft(listed, [])
    expected = (GOLDENS / f"{golden}.golden").read_text()
    if golden in SPELLING:
        expected = expected.replace(*SPELLING[golden])
    assert generate_nftables(settings).script == expected


@pytest.mark.parametrize("golden", sorted(p.stem for p in GOLDENS.glob("*.golden")))
def test_settings_read_from_istios_nft_script_regenerate_it(golden: str) -> None:
    """Every capture golden, owner groups included (their group names cannot be loaded, so never listed)."""
    script = (GOLDENS / f"{golden}.golden").read_text()
    settings = settings_from_nft(parse_nftables(script).ruleset, [])
    expected = script.replace(*SPELLING[golden]) if golden == "dns-uid-gid" else script
    assert generate_nftables(settings).script == expected


def test_redirect_nft_pod_is_fixed_by_istios_tproxy_nft_tables_resimulated_to_the_client_ip() -> None:
    ev = redirect_pod()
    r = fix(ev, client=CLIENT, port=PORT)
    out = r.to_dict()
    assert out["backend"] == "nftables"
    assert r.before["app_peer_ip"] == "127.0.0.6"
    assert r.works and r.after is not None
    assert r.after["app_peer_ip"] == CLIENT_IP and r.after["failure"] is None
    (rep,) = r.repairs
    assert rep.key == "switch-to-tproxy"
    assert "iptables" not in kinds(out) and "iptables-restore" not in kinds(out)
    fragment = out["nft_fragment"]
    assert fragment.startswith("add table inet istio-proxy-nat\ndelete table inet istio-proxy-nat\n")
    assert (
        "add rule inet istio-proxy-mangle istio-tproxy meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to :15006 "
        "meta mark set 1337 counter accept\n" in fragment
    )
    assert fragment == next(a["content"] for a in out["patches"][0]["artifacts"] if a["kind"] == "nft-f")
    patched = out["patched"]
    assert patched["iptables_save"] == ""
    assert patched["nftables"].endswith(fragment)
    assert patched["ip_rule"] == ["rule add pref 32765 from all fwmark 0x539 lookup 133"]
    # The patched evidence, simulated again on its own, is what the fix promised.
    story = story_for(r.patched, client=CLIENT, port=PORT)  # type: ignore[arg-type]
    assert story.verdict.to_dict() == r.after
    assert "inet istio-proxy-mangle TPROXY" in str(story.facts.get("capture"))


def test_redirect_nft_pod_compared_with_its_tproxy_twin_built_by_istios_nft_generator() -> None:
    out = compare(redirect_pod(), [(CLIENT, PORT)])
    assert out["backend"] == "nftables" and out["modes"] == ["REDIRECT", "TPROXY"]
    rows = {row["aspect"]: (row["REDIRECT"], row["TPROXY"]) for row in out["connections"][0]["rows"]}
    assert "inet istio-proxy-nat REDIRECT" in str(rows["capture"][0])
    assert "inet istio-proxy-mangle TPROXY" in str(rows["capture"][1])
    assert rows["app_peer_ip"] == ("127.0.0.6", CLIENT_IP)
    assert "tproxy ip to :15006" in out["derived"]["nft_fragment"]
    assert any("`ct mark` save/restore" in c for c in out["costs"]["TPROXY"])


def test_tproxy_nft_pod_compared_with_its_redirect_twin_in_nft() -> None:
    out = compare(nft_evidence(TPROXY_NFT), [(CLIENT, PORT)])
    assert out["modes"] == ["TPROXY", "REDIRECT"]
    rows = {row["aspect"]: (row["TPROXY"], row["REDIRECT"]) for row in out["connections"][0]["rows"]}
    assert rows["app_peer_ip"] == (CLIENT_IP, "127.0.0.6")
    assert "inet istio-proxy-nat REDIRECT" in str(rows["capture"][1])
    assert "redirect to :15006" in out["derived"]["nft_fragment"]


def test_tproxy_nft_pod_without_the_policy_route_gets_only_the_ip_rule_and_route() -> None:
    r = fix(nft_evidence(TPROXY_NFT, ip_rule=None, ip_route=IP_ROUTE_NONE), client=CLIENT, port=PORT)
    assert r.before["failure"] == "REPLY_ESCAPES_VIA_eth0"
    assert r.works and r.after is not None and r.after["app_peer_ip"] == CLIENT_IP
    assert [x.key for x in r.repairs] == ["ip-rule-fwmark", "ip-route-local-default"]
    out = r.to_dict()
    assert out["backend"] == "nftables" and out["nft_fragment"] is None


@pytest.mark.parametrize(
    ("missing", "key", "command"),
    [
        (
            "ct mark set meta mark",
            "connmark-save",
            "nft add rule inet istio-proxy-mangle prerouting meta l4proto tcp mark 1337 counter ct mark set mark",
        ),
        (
            "meta mark set ct mark",
            "connmark-restore",
            "nft add rule inet istio-proxy-mangle output meta l4proto tcp ct mark 1337 counter meta mark set ct mark",
        ),
    ],
)
def test_tproxy_nft_pod_missing_its_connection_mark_rule_gets_it_as_an_nft_rule(
    missing: str, key: str, command: str
) -> None:
    r = fix(nft_evidence(without(TPROXY_NFT, missing)), client=CLIENT, port=PORT)
    assert r.before["app_peer_ip"] is None and r.before["failure"] is not None
    assert r.works and r.after is not None and r.after["app_peer_ip"] == CLIENT_IP
    (rep,) = r.repairs
    assert rep.key == key
    assert [a.kind for a in rep.artifacts] == ["nft", "nft-f"]
    assert rep.artifacts[0].content == command
    out = r.to_dict()
    assert out["nft_fragment"].endswith(command.removeprefix("nft ") + "\n")
    assert story_for(r.patched, client=CLIENT, port=PORT).verdict.to_dict() == r.after  # type: ignore[arg-type]


def test_mixed_pod_keeps_its_iptables_rules_and_other_nft_tables_untouched() -> None:
    ev = redirect_pod(nftables=KUBE_PROXY + REDIRECT_NFT, iptables=KUBE_FIREWALL)
    r = fix(ev, client=CLIENT, port=PORT)
    assert r.backend == "nftables"
    assert r.works and r.after is not None and r.after["app_peer_ip"] == CLIENT_IP
    assert r.patched is not None
    assert r.patched.iptables == KUBE_FIREWALL
    after = parse_nftables(r.patched.nftables or "").ruleset
    assert after.table("ip", "kube-proxy") == parse_nftables(KUBE_PROXY).ruleset.table("ip", "kube-proxy")
    assert {t.name for t in after.tables} == {"kube-proxy", "istio-proxy-nat", "istio-proxy-mangle"}
    assert "iptables" not in kinds(r.to_dict())


def test_iptables_pod_still_gets_iptables_repairs() -> None:
    rules = "\n".join(ln for ln in TPROXY_RULES.splitlines() if "--restore-mark" not in ln) + "\n"
    r = fix(tproxy_evidence(iptables=rules), client=CLIENT, port=PORT)
    assert r.backend == "iptables" and r.to_dict()["nft_fragment"] is None
    assert [a.kind for x in r.repairs for a in x.artifacts] == ["iptables", "iptables-restore"]


def test_nft_json_evidence_is_fixed_like_its_listing() -> None:
    ev = redirect_pod(nftables=(LISTED / "capture-inbound-ports-wildcard.json").read_text())
    listed = fix(redirect_pod(), client=CLIENT, port=PORT)
    r = fix(ev, client=CLIENT, port=PORT)
    assert r.works and r.after == listed.after and r.after is not None and r.after["app_peer_ip"] == CLIENT_IP
    assert r.to_dict()["nft_fragment"] == listed.to_dict()["nft_fragment"]
    assert r.patched is not None and (r.patched.nftables or "").startswith("table inet istio-proxy-nat {")
    out = compare(ev, [(CLIENT, PORT)])
    assert out["connections"][0]["differences"]["app_peer_ip"] == {"REDIRECT": "127.0.0.6", "TPROXY": CLIENT_IP}


def test_ipv6_client_of_an_nft_pod_gets_ip6_routing_and_the_inet_rule_it_lacks() -> None:
    from dataclasses import replace

    from meshviz.engine.istio.settings import CaptureSettings, InterceptionMode

    from .test_ipv6_fix_emits_ip6_commands import _evidence

    settings = CaptureSettings(
        interception_mode=InterceptionMode.TPROXY,
        enable_ipv6=True,
        inbound_tproxy_mark=0x100,
        inbound_tproxy_route_table=200,
        inbound_ports_include="*",
    )
    script = without(generate_nftables(settings).script, "meta mark set ct mark")
    r = fix(replace(_evidence(), ip6tables=None, nftables=script), client="[fd00:1::1]:40000", port=8083)
    assert r.backend == "nftables"
    assert r.works and r.after is not None and r.after["app_peer_ip"] == "fd00:1::1"
    contents = [a.content for x in r.repairs for a in x.artifacts if a.kind in ("ip", "nft")]
    assert contents == [
        "ip -6 rule add fwmark 256 lookup 133",
        "ip -6 route add local ::/0 dev lo table 133",
        "nft add rule inet istio-proxy-mangle output meta l4proto tcp ct mark 256 counter meta mark set ct mark",
    ]
