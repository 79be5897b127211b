"""UDP stories on Istio's DNS capture goldens (dns-uid-gid: resolv.conf's 127.0.0.53 captured, the sidecar's uids
3,4 and gids 1,2 exempt, conntrack zones 1 and 2): the application's query reaches the DNS proxy and its answer
comes back from the server it asked; the sidecar's own query is not captured; a server the rules do not name is
not captured; an answer tracked in another zone is not un-NATed; the iptables golden and its nftables twin tell
the same stories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshviz.engine.core.trace import Disposition, StepKind
from meshviz.engine.pipeline.pod import run_story
from meshviz.engine.story.model import UDP_VERDICT_FIELDS, Story

FIX = Path(__file__).resolve().parents[2] / "fixtures"
GOLDENS = {
    "iptables": (FIX / "corpus" / "istio-iptables" / "dns-uid-gid.golden").read_text(),
    "nftables": (FIX / "istio-nftables" / "capture" / "dns-uid-gid.golden").read_text(),
}
APP = {"app_uid": 1000, "app_gid": 1000}


def udp(backend: str, dst: str, **kw: Any) -> Story:
    r = run_story(**{backend: GOLDENS[backend]}, pod_ip="10.0.0.10", direction="udp", dst=dst, **kw)
    assert r.story is not None
    return r.story


@pytest.mark.parametrize("backend", GOLDENS)
def test_the_applications_query_to_the_captured_nameserver_reaches_the_dns_proxy_and_the_answer_comes_from_the_server(
    backend: str,
) -> None:
    st = udp(backend, "127.0.0.53:53", **APP)
    assert st.verdict.to_dict() == {
        "intercepted": True,
        "received_by": "dns-proxy",
        "receiver_peer_ip": "127.0.0.1",
        "reply_received": True,
        "reply_source": "127.0.0.53:53",
        "failure": None,
    }
    assert tuple(st.verdict.to_dict()) == UDP_VERDICT_FIELDS
    query, answer = (h.trace for h in st.hops)
    assert query is not None and answer is not None
    assert any("new connection (zone 2)" in s.detail for s in query.steps()), "the query is tracked in zone 2"
    assert any("reply direction" in s.detail for s in answer.steps()), "the proxy's answer (zone 2) finds it"


@pytest.mark.parametrize("backend", GOLDENS)
def test_the_sidecars_own_query_is_exempt_and_goes_to_the_server(backend: str) -> None:
    st = udp(backend, "10.9.9.9:53", app_uid=3, app_gid=0)
    assert st.verdict.to_dict() == {
        "intercepted": False,
        "received_by": "destination",
        "receiver_peer_ip": "10.0.0.10",
        "reply_received": True,
        "reply_source": "10.9.9.9:53",
        "failure": None,
    }
    query = st.hops[0].trace
    assert query is not None
    assert any("new connection (zone 1)" in s.detail for s in query.steps()), "the proxy's upstream is in zone 1"


@pytest.mark.parametrize("backend", GOLDENS)
def test_the_sidecars_query_to_the_local_nameserver_is_not_captured_and_nothing_listens_there(backend: str) -> None:
    st = udp(backend, "127.0.0.53:53", app_uid=3, app_gid=0)
    assert (st.verdict.intercepted, st.verdict.received_by, st.verdict.failure_code) == (False, None, "NO_LISTENER")


@pytest.mark.parametrize("backend", GOLDENS)
def test_a_nameserver_the_rules_do_not_name_is_not_captured(backend: str) -> None:
    st = udp(backend, "10.9.9.9:53", **APP)
    assert (st.verdict.intercepted, st.verdict.received_by, st.verdict.reply_source) == (
        False,
        "destination",
        "10.9.9.9:53",
    )


@pytest.mark.parametrize("backend", GOLDENS)
def test_a_dns_proxy_running_as_a_uid_the_rules_do_not_name_answers_in_zone_0_and_the_answer_is_not_un_natted(
    backend: str,
) -> None:
    st = udp(backend, "127.0.0.53:53", proxy_uid=1500, proxy_gid=1500, **APP)
    v = st.verdict
    assert (v.intercepted, v.received_by, v.reply_received, v.reply_source, v.failure_code) == (
        True,
        "dns-proxy",
        False,
        None,
        "REPLY_UNMATCHED",
    )
    answer = st.hops[1].trace
    assert answer is not None and answer.final_packet is not None
    assert answer.disposition == Disposition.NO_SOCKET
    assert (str(answer.final_packet.src), answer.final_packet.sport) == ("127.0.0.1", 15053), "not un-NATed"
    assert any("new connection" in s.detail for s in answer.steps()), "zone 0 has no entry for the answer"


@pytest.mark.parametrize("backend", GOLDENS)
def test_a_captured_query_with_no_dns_proxy_listening_times_out_as_its_icmp_error_is_tracked_in_another_zone(
    backend: str,
) -> None:
    st = udp(backend, "127.0.0.53:53", dns_proxy=False, **APP)
    assert (st.verdict.received_by, st.verdict.reply_received, st.verdict.failure_code) == (None, False, "TIMEOUT")
    assert any(
        "looked up in conntrack zone 0, the datagram's connection #1 is in zone 2" in f.text for f in st.findings
    )


def test_without_zone_rules_the_icmp_error_of_a_redirected_query_is_related_and_refuses_it() -> None:
    rules = "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053\nCOMMIT\n"
    r = run_story(iptables=rules, pod_ip="10.0.0.10", direction="udp", dst="10.9.9.9:53", dns_proxy=False, **APP)
    assert r.story is not None
    assert r.story.verdict.failure_code == "NO_LISTENER"
    assert any("relates it to connection #1 (zone 0)" in f.text for f in r.story.findings)


def test_a_looped_back_answer_keeps_its_conntrack_entry_whatever_zone_raw_prerouting_sets() -> None:
    st = udp("iptables", "127.0.0.53:53", **APP)
    answer = st.hops[1].trace
    assert answer is not None
    ignored = [s for s in answer.steps() if s.kind == StepKind.CONNTRACK and "zone 1 is not set" in s.detail]
    assert len(ignored) == 1 and ignored[0].hook == "PREROUTING"


def test_a_udp_story_round_trips_through_its_dict() -> None:
    st = udp("nftables", "127.0.0.53:53", **APP)
    assert Story.from_dict(st.to_dict()) == st
