"""End to end with Istio's real rules: which IP does the application see behind a stand-in sidecar?

The sidecar stand-in (``PodNet.sidecar``) does what Envoy's inbound listener does as far as
the kernel can tell: accept, read the original destination, open one upstream connection
(optionally transparent, marked and bound like the original_src filter) and relay one line.
The client makes a real request (``PodNet.request_from_client``); the app on 8080 echoes the
peer it saw.  The rules are Istio's own, from istio-cni's golden files (embedded below, in
Istio's dry-run format, and converted to iptables-restore text).  See docs/kernel-tests.md,
"The sidecar stand-in, end to end".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kernel.netns import E2EResult, PodNet, Sidecar, restore_text

pytestmark = pytest.mark.kernel

BOTH = pytest.mark.parametrize("podnet", ["legacy", "nft"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = ROOT.parent / "shared" / "corpus" / "istio-cni" / "plugin"

# istio-cni plugin/testdata/basic.txt.golden: REDIRECT mode (Istio's dry-run output, verbatim).
ISTIO_REDIRECT_GOLDEN = """\
* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p tcp --dport 15020 -j RETURN
-A ISTIO_OUTPUT -p udp --dport 15020 -j RETURN
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
"""

# istio-cni plugin/testdata/tproxy.txt.golden: TPROXY mode (Istio's dry-run output, verbatim).
ISTIO_TPROXY_GOLDEN = """\
* mangle
-N ISTIO_DIVERT
-N ISTIO_TPROXY
-N ISTIO_INBOUND
-A ISTIO_DIVERT -j MARK --set-mark 1337
-A ISTIO_DIVERT -j ACCEPT
-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT
-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY
-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark
-A OUTPUT -p tcp -o lo -m mark --mark 1337 -j RETURN
-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --uid-owner 1337 -j MARK --set-mark 1338
-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --gid-owner 1337 -j MARK --set-mark 1338
-A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark
-I ISTIO_INBOUND 1 -p tcp -m mark --mark 1337 -j RETURN
-I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN
-I ISTIO_INBOUND 3 -p tcp -i lo -m mark ! --mark 1338 -j RETURN
COMMIT
* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p tcp --dport 15020 -j RETURN
-A ISTIO_OUTPUT -p udp --dport 15020 -j RETURN
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
"""

UNEXPECTED_TIMEOUT = 1.0  # upstream_timeout for the setups whose upstream connect is expected to time out

# Observation rules (no target) appended after Istio's: count without changing anything.
APP_SYNACK_VIA_ETH0 = "-A POSTROUTING -o eth0 -p tcp -m tcp --sport 8080 --tcp-flags SYN,ACK SYN,ACK"
APP_SYNACK_VIA_LO = "-A POSTROUTING -o lo -p tcp -m tcp --sport 8080 --tcp-flags SYN,ACK SYN,ACK"
CLIENT_GOT_SYNACK = "-A INPUT -p tcp -m tcp --sport 8080 --tcp-flags SYN,ACK SYN,ACK"
CLIENT_SENT_RST = "-A OUTPUT -p tcp -m tcp --dport 8080 --tcp-flags RST RST"


def istio_restore(golden: str, on_port: int | None = None) -> str:
    """Istio's dry-run text -> iptables-restore text: ``* nat`` -> ``*nat``, ``-N X`` -> ``:X - [0:0]``.

    `on_port` rewrites the TPROXY ``--on-port`` (Istio 1.5 sent inbound TPROXY to 15001).
    """
    out: list[str] = []
    for line in golden.splitlines():
        if line.startswith("* "):
            line = "*" + line[2:].strip()
        elif line.startswith("-N "):
            line = f":{line[3:].strip()} - [0:0]"
        if on_port is not None:
            line = line.replace("--on-port 15006", f"--on-port {on_port}")
        out.append(line)
    return "\n".join(out) + "\n"


def add_policy_routes(podnet: PodNet) -> None:
    """Istio's TPROXY policy routing: mark 1337 -> table 133 -> local default dev lo."""
    podnet.ip("rule", "add", "fwmark", "1337", "lookup", "133")
    podnet.ip("route", "add", "local", "default", "dev", "lo", "table", "133")


def observe(podnet: PodNet) -> None:
    """Count the app's SYN-ACKs per exit device (pod) and the stray SYN-ACKs the client gets."""
    podnet.load_iptables(restore_text("mangle", APP_SYNACK_VIA_ETH0, APP_SYNACK_VIA_LO), noflush=True)
    podnet.run_client(
        [f"iptables-{podnet.backend}-restore", "-w", "10"],
        input=restore_text("filter", CLIENT_GOT_SYNACK, CLIENT_SENT_RST),
    )


def client_packets(podnet: PodNet, rule: str) -> int:
    return podnet.packets("filter", rule, side="client")


def only(events: list[dict[str, Any]], **match: object) -> dict[str, Any]:
    found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, events)
    return found[0]


def tproxy_sidecar(
    podnet: PodNet,
    *,
    port: int = 15006,
    upstream_target: str = "original_dst",
    upstream_bind: str | None = None,
    upstream_transparent: bool = False,
    upstream_mark: int = 0,
    upstream_timeout: float = 1.5,
) -> Sidecar:
    """Istio's TPROXY-mode sidecar: uid 0 gid 1337, transparent listener, original dst = getsockname."""
    return podnet.sidecar(
        port=port,
        transparent=True,
        uid=0,
        gid=1337,
        orig_dst="getsockname",
        upstream_target=upstream_target,
        upstream_bind=upstream_bind,
        upstream_transparent=upstream_transparent,
        upstream_mark=upstream_mark,
        upstream_timeout=upstream_timeout,
    )


# --------------------------------------------------------------------------- the rules themselves


def test_embedded_golden_text_is_identical_to_the_shared_istio_cni_goldens() -> None:
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"{GOLDEN_DIR} is not present")
    assert (GOLDEN_DIR / "basic.txt.golden").read_text() == ISTIO_REDIRECT_GOLDEN
    assert (GOLDEN_DIR / "tproxy.txt.golden").read_text() == ISTIO_TPROXY_GOLDEN


def test_istio_restore_converts_dry_run_headers_and_chain_declarations() -> None:
    text = istio_restore(ISTIO_TPROXY_GOLDEN, on_port=15001)
    assert text.startswith("*mangle\n:ISTIO_DIVERT - [0:0]\n")
    assert "\n*nat\n" in text and "-N " not in text and "* " not in text
    assert "--on-port 15001" in text and "--on-port 15006" not in text


@BOTH
def test_converted_istio_goldens_load_with_iptables_restore(podnet: PodNet) -> None:
    podnet.load_iptables(istio_restore(ISTIO_REDIRECT_GOLDEN))
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in podnet.iptables_save()
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN))
    saved = podnet.iptables_save()
    # The three -I lines went to the top of ISTIO_INBOUND, in order.
    inbound = [line for line in saved.splitlines() if line.startswith("-A ISTIO_INBOUND")]
    assert inbound[:3] == [
        "-A ISTIO_INBOUND -p tcp -m mark --mark 0x539 -j RETURN",
        "-A ISTIO_INBOUND -s 127.0.0.6/32 -i lo -p tcp -j RETURN",
        "-A ISTIO_INBOUND -i lo -p tcp -m mark ! --mark 0x53a -j RETURN",
    ]


# --------------------------------------------------------------------------- the stand-in alone


def test_e2e_result_parses_relayed_lines_errors_and_nested_hops() -> None:
    base = {"outcome": "connected", "local": ["10.80.0.1", 40000], "elapsed": 0.001}
    app = '{"listener": "app", "peer": ["127.0.0.6", 41000], "local": ["10.80.0.10", 8080]}'
    relayed = E2EResult.from_json({**base, "response": f"VIA-PROXY envoy {app}"})
    assert relayed.via_proxy and relayed.proxy_hops == ("envoy",) and relayed.proxy_error is None
    assert relayed.app_peer == ("127.0.0.6", 41000) and relayed.app_listener == "app" and relayed.ok
    loop = E2EResult.from_json({**base, "response": "VIA-PROXY envoy PROXY-ERROR LOOP"})
    assert (loop.proxy_hops, loop.proxy_error, loop.proxy_errno, loop.ok) == (("envoy",), "LOOP", None, False)
    uf = E2EResult.from_json({**base, "response": "PROXY-ERROR UF ETIMEDOUT"})
    assert (uf.via_proxy, uf.proxy_hops, uf.proxy_error, uf.proxy_errno) == (True, (), "UF", "ETIMEDOUT")
    direct = E2EResult.from_json({**base, "response": app})
    assert not direct.via_proxy and direct.app_peer == ("127.0.0.6", 41000)
    refused = E2EResult.from_json({"outcome": "refused", "errno": "ECONNREFUSED", "response": None})
    assert not refused.client_connected and not refused.via_proxy and refused.app is None


def test_sidecar_without_rules_relays_to_a_fixed_upstream_and_app_sees_the_pod_ip(podnet: PodNet) -> None:
    app = podnet.listen("app", 8080)
    sidecar = podnet.sidecar(upstream_target="pod_ip:8080", keep_caps=False)
    result = podnet.request_from_client(podnet.pod_ip, 15006)
    assert result.proxy_hops == ("envoy",) and result.app_listener == "app"
    assert result.app is not None and result.app["received"] == "hello from meshviz client"
    [accepted] = sidecar.accepted()
    assert accepted["peer"] == list(result.local or ()) and accepted["uid"] == 1337 and accepted["gid"] == 1337
    assert (accepted["original_dst"], accepted["original_dst_error"]) == (None, "ENOENT")  # no conntrack
    [upstream] = sidecar.upstreams()
    assert upstream["outcome"] == "connected" and upstream["target"] == [podnet.pod_ip, 8080]
    assert result.app_peer == tuple(upstream["upstream_local"]) and result.app_peer[0] == podnet.pod_ip
    [relayed] = sidecar.events(1.0, "relayed")
    assert relayed["error"] is None and relayed["request"] == "hello from meshviz client"
    assert [a.peer for a in app.accepted()] == [result.app_peer]


def test_sidecar_uid_1337_with_kept_net_admin_marks_its_upstream_without_it_gets_uf_eperm(podnet: PodNet) -> None:
    podnet.listen("app", 8080)
    with_caps = podnet.sidecar(port=15006, upstream_target="pod_ip:8080", upstream_mark=1337)  # keep_caps=True
    without = podnet.sidecar(
        name="nocaps", port=15007, upstream_target="pod_ip:8080", upstream_mark=1337, keep_caps=False
    )
    assert podnet.request_from_client(podnet.pod_ip, 15006).app_listener == "app"
    assert with_caps.upstreams()[0]["mark"] == 1337
    result = podnet.request_from_client(podnet.pod_ip, 15007)
    assert (result.proxy_error, result.proxy_errno) == ("UF", "EPERM")
    assert (without.upstreams()[0]["stage"], without.upstreams()[0]["outcome"]) == ("SO_MARK", "error")


def test_sidecar_answers_uf_econnrefused_when_nothing_listens_upstream(podnet: PodNet) -> None:
    sidecar = podnet.sidecar(upstream_target="127.0.0.1:8080", keep_caps=False)
    result = podnet.request_from_client(podnet.pod_ip, 15006)
    assert result.client_connected and result.response == "PROXY-ERROR UF ECONNREFUSED"
    assert (result.proxy_error, result.proxy_errno, result.proxy_hops) == ("UF", "ECONNREFUSED", ())
    assert sidecar.upstreams()[0]["outcome"] == "refused"


def test_sidecar_answers_nr_when_original_dst_is_needed_but_kernel_has_none(podnet: PodNet) -> None:
    sidecar = podnet.sidecar(keep_caps=False)  # upstream_target original_dst, no conntrack in the pod
    result = podnet.request_from_client(podnet.pod_ip, 15006)
    assert (result.proxy_error, result.proxy_errno) == ("NR", "ENOENT")
    assert sidecar.upstreams()[0]["stage"] == "original_dst"


def test_request_from_client_reports_refused_without_any_listener(podnet: PodNet) -> None:
    result = podnet.request_from_client(podnet.pod_ip, 8080, timeout=1.0)
    assert (result.client_connected, result.outcome, result.errno) == (False, "refused", "ECONNREFUSED")
    assert result.response is None and not result.via_proxy


# --------------------------------------------------------------------------- REDIRECT mode (basic.txt.golden)


@BOTH
def test_redirect_sidecar_uid_1337_bound_to_127_0_0_6_app_sees_127_0_0_6_and_client_gets_reply(
    podnet: PodNet,
) -> None:
    """Istio >= 1.10: the inbound cluster sends to the original destination from 127.0.0.6."""
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_REDIRECT_GOLDEN))
    sidecar = podnet.sidecar(uid=1337, gid=1337, keep_caps=False, upstream_bind="127.0.0.6")
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.client_connected and result.proxy_hops == ("envoy",) and result.proxy_error is None
    assert result.app_listener == "app" and result.app_peer is not None
    assert result.app_peer[0] == "127.0.0.6"
    accepted = only(sidecar.accepted(), seq=1)
    assert accepted["peer"] == list(result.local or ())  # the sidecar sees the real client
    assert accepted["local"] == [podnet.pod_ip, 15006]
    assert accepted["original_dst"] == [podnet.pod_ip, 8080]
    upstream = only(sidecar.upstreams(), seq=1)
    assert upstream["target"] == [podnet.pod_ip, 8080] and upstream["outcome"] == "connected"
    assert tuple(upstream["upstream_local"]) == result.app_peer
    assert [a.peer for a in app.accepted()] == [result.app_peer]
    assert app.accepted()[0].local == (podnet.pod_ip, 8080)
    # The upstream SYN left nat OUTPUT through the 127.0.0.6 exemption, nothing else.
    assert podnet.packets("nat", "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN") == 1
    assert podnet.packets("nat", "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006") == 1
    assert sidecar.loops() == []


@BOTH
def test_redirect_sidecar_to_127_0_0_1_8080_without_bind_app_sees_127_0_0_1(podnet: PodNet) -> None:
    """Istio < 1.10: the inbound cluster sends to 127.0.0.1:<port>, unbound."""
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_REDIRECT_GOLDEN))
    sidecar = podnet.sidecar(uid=1337, gid=1337, keep_caps=False, upstream_target="original_port_on:127.0.0.1")
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.proxy_hops == ("envoy",) and result.app_listener == "app"
    assert result.app_peer is not None and result.app_peer[0] == "127.0.0.1"
    assert only(sidecar.upstreams(), seq=1)["target"] == ["127.0.0.1", 8080]
    assert app.accepted()[0].local == ("127.0.0.1", 8080)
    # uid 1337 to 127.0.0.1 is exempted by `-m owner --uid-owner 1337 -j RETURN` (not the -o lo rules).
    assert podnet.packets("nat", "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN") == 1


@BOTH
def test_redirect_sidecar_uid_1337_to_pod_ip_without_bind_is_recaptured_into_15006_and_loop_is_detected(
    podnet: PodNet,
) -> None:
    """uid 1337, -o lo, ! -d 127.0.0.1 -> ISTIO_IN_REDIRECT: the sidecar's own upstream comes back."""
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_REDIRECT_GOLDEN))
    sidecar = podnet.sidecar(uid=1337, gid=1337, keep_caps=False, upstream_target="pod_ip:8080")
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.client_connected
    assert result.response == "VIA-PROXY envoy PROXY-ERROR LOOP"
    assert (result.proxy_hops, result.proxy_error) == (("envoy",), "LOOP")
    [loop] = sidecar.loops(timeout=1.0)
    assert loop["upstream_of"] == 1 and loop["seq"] == 2
    outer_upstream = only(sidecar.upstreams(), seq=1)
    inner = only(sidecar.accepted(), seq=2)
    assert outer_upstream["outcome"] == "connected"  # the handshake completed -- with ourselves
    assert inner["peer"] == outer_upstream["upstream_local"]
    assert inner["peer"][0] == podnet.pod_ip
    assert inner["local"] == ["127.0.0.1", 15006]  # OUTPUT REDIRECT rewrites to 127.0.0.1
    assert inner["original_dst"] == [podnet.pod_ip, 8080]
    assert app.accepted() == []
    rule = "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT"
    assert podnet.packets("nat", rule) == 1


# --------------------------------------------------------------------------- TPROXY mode (tproxy.txt.golden)


@BOTH
def test_tproxy_sidecar_original_src_mark_1337_with_policy_routes_app_sees_client_ip(podnet: PodNet) -> None:
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN))
    add_policy_routes(podnet)
    observe(podnet)
    sidecar = tproxy_sidecar(podnet, upstream_bind="downstream_src", upstream_transparent=True, upstream_mark=1337)
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.proxy_hops == ("envoy",) and result.app_listener == "app"
    assert result.app_peer is not None and result.app_peer[0] == podnet.client_ip
    assert result.app_peer != result.local  # same IP, but the upstream socket's own port
    accepted = only(sidecar.accepted(), seq=1)
    assert accepted["peer"] == list(result.local or ())
    assert accepted["local"] == accepted["original_dst"] == [podnet.pod_ip, 8080]
    assert (accepted["uid"], accepted["gid"]) == (0, 1337)
    upstream = only(sidecar.upstreams(), seq=1)
    assert upstream["bind"] == [podnet.client_ip, 0] and upstream["mark"] == 1337 and upstream["transparent"]
    assert tuple(upstream["upstream_local"]) == result.app_peer
    assert app.accepted()[0].local == (podnet.pod_ip, 8080)
    # The app's SYN-ACK to 10.80.0.1 was restored to mark 1337 and routed to lo by table 133.
    assert podnet.packets("mangle", APP_SYNACK_VIA_LO) == 1
    assert podnet.packets("mangle", APP_SYNACK_VIA_ETH0) == 1  # only the sidecar's, to the real client
    assert podnet.packets("mangle", "--restore-mark") >= 1
    assert client_packets(podnet, CLIENT_GOT_SYNACK) == 1
    assert sidecar.loops() == []


@BOTH
def test_tproxy_sidecar_original_src_without_policy_routes_upstream_times_out_and_client_gets_503_uf(
    podnet: PodNet,
) -> None:
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN))
    observe(podnet)
    sidecar = tproxy_sidecar(
        podnet,
        upstream_bind="downstream_src",
        upstream_transparent=True,
        upstream_mark=1337,
        upstream_timeout=UNEXPECTED_TIMEOUT,
    )
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.client_connected and result.response == "PROXY-ERROR UF ETIMEDOUT"
    assert (result.proxy_error, result.proxy_errno) == ("UF", "ETIMEDOUT")
    upstream = only(sidecar.upstreams(), seq=1)
    assert upstream["outcome"] == "timeout" and upstream["upstream_local"][0] == podnet.client_ip
    # The app did get the SYN, but its SYN-ACK left through eth0 to the real client, which reset it.
    assert podnet.packets("mangle", APP_SYNACK_VIA_LO) == 0
    assert podnet.packets("mangle", APP_SYNACK_VIA_ETH0) >= 2  # the sidecar's own + the app's stray one(s)
    assert client_packets(podnet, CLIENT_GOT_SYNACK) >= 2
    assert client_packets(podnet, CLIENT_SENT_RST) >= 1
    assert app.accepted() == []
    assert sidecar.loops() == []


TPROXY_RULE = "-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15006"


@BOTH
def test_tproxy_sidecar_original_src_with_mark_0_upstream_syn_is_recaptured_into_15006_but_times_out_uf(
    podnet: PodNet,
) -> None:
    """Unmarked, gid 1337: mangle OUTPUT marks the upstream SYN 1338, so ISTIO_INBOUND does not
    RETURN it on lo and ISTIO_TPROXY hands it to the sidecar's own transparent 15006 listener
    (no established socket has that 4-tuple).  But the handshake never completes:
    TPROXY is a terminal target, so the SYN never reaches `PREROUTING --save-mark`, the connection's
    mark stays 0, and the listener's SYN-ACK to 10.80.0.1 is not restored to 1337: it leaves through
    eth0 to the real client, which resets it.  No accept, so no loop: the upstream times out (UF)."""
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN))
    add_policy_routes(podnet)
    observe(podnet)
    sidecar = tproxy_sidecar(
        podnet,
        upstream_bind="downstream_src",
        upstream_transparent=True,
        upstream_mark=0,
        upstream_timeout=UNEXPECTED_TIMEOUT,
    )
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.client_connected and (result.proxy_error, result.proxy_errno) == ("UF", "ETIMEDOUT")
    upstream = only(sidecar.upstreams(), seq=1)
    assert upstream["outcome"] == "timeout" and upstream["upstream_local"][0] == podnet.client_ip
    assert podnet.packets("mangle", "--gid-owner 1337 -j MARK --set-xmark 0x53a/0xffffffff") >= 1
    assert podnet.packets("mangle", TPROXY_RULE) >= 2  # the client's SYN and the sidecar's own upstream SYN
    assert podnet.packets("mangle", "--save-mark") == 0
    assert podnet.packets("mangle", APP_SYNACK_VIA_LO) == 0
    assert podnet.packets("mangle", APP_SYNACK_VIA_ETH0) >= 2  # to the client: the real one + the stray one
    assert client_packets(podnet, CLIENT_GOT_SYNACK) >= 2
    assert client_packets(podnet, CLIENT_SENT_RST) >= 1
    assert [e["seq"] for e in sidecar.accepted()] == [1]  # the recaptured SYN was never accepted
    assert sidecar.loops() == []
    assert app.accepted() == []


@BOTH
def test_tproxy_sidecar_unbound_unmarked_upstream_to_pod_ip_loops_into_itself_and_loop_is_detected(
    podnet: PodNet,
) -> None:
    """No original_src at all: the upstream leaves from 10.80.0.10, gid 1337 -> mark 1338 -> TPROXY
    into 15006 again; the listener's SYN-ACK goes to a local address, so this handshake completes
    and the sidecar accepts its own upstream connection: the loop the stand-in refuses."""
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN))
    add_policy_routes(podnet)
    sidecar = tproxy_sidecar(podnet)  # upstream_target original_dst, no bind, no mark
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.response == "VIA-PROXY envoy PROXY-ERROR LOOP"
    [loop] = sidecar.loops(timeout=1.0)
    outer = only(sidecar.upstreams(), seq=1)
    inner = only(sidecar.accepted(), seq=2)
    assert loop["upstream_of"] == 1 and outer["outcome"] == "connected"
    assert inner["peer"] == outer["upstream_local"] and inner["peer"][0] == podnet.pod_ip
    assert inner["local"] == inner["original_dst"] == [podnet.pod_ip, 8080]
    assert podnet.packets("mangle", TPROXY_RULE) == 2
    assert app.accepted() == []


def test_tcp_fwmark_accept_1_breaks_tproxy_inbound_the_sidecar_syn_ack_follows_table_133_to_lo(
    podnet: PodNet,
) -> None:
    """The client's SYN carries the TPROXY mark 1337; with tcp_fwmark_accept=1 the sidecar's
    request socket inherits it, so its SYN-ACK to the client is routed by `fwmark 1337 lookup 133`
    to lo instead of eth0: the client never connects."""
    podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN))
    add_policy_routes(podnet)
    podnet.sysctl("net.ipv4.tcp_fwmark_accept", 1)
    podnet.load_iptables(restore_text("mangle", "-A POSTROUTING -o lo -p tcp -m tcp --sport 8080"), noflush=True)
    sidecar = tproxy_sidecar(podnet, upstream_bind="downstream_src", upstream_transparent=True, upstream_mark=1337)
    result = podnet.request_from_client(podnet.pod_ip, 8080, timeout=UNEXPECTED_TIMEOUT)
    assert (result.client_connected, result.outcome) == (False, "timeout")
    assert podnet.packets("mangle", "-A POSTROUTING -o lo -p tcp -m tcp --sport 8080") >= 1
    assert sidecar.accepted() == []


@BOTH
def test_tproxy_sidecar_bound_to_127_0_0_6_app_sees_127_0_0_6(podnet: PodNet) -> None:
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN))
    add_policy_routes(podnet)
    sidecar = tproxy_sidecar(podnet, upstream_bind="127.0.0.6")
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.proxy_hops == ("envoy",) and result.app_listener == "app"
    assert result.app_peer is not None and result.app_peer[0] == "127.0.0.6"
    upstream = only(sidecar.upstreams(), seq=1)
    assert upstream["target"] == [podnet.pod_ip, 8080] and upstream["mark"] == 0
    # gid 1337 marks it 1338 in mangle OUTPUT; ISTIO_INBOUND lets 127.0.0.6 on lo through.
    assert podnet.packets("mangle", "--gid-owner 1337 -j MARK --set-xmark 0x53a/0xffffffff") >= 1
    assert podnet.packets("mangle", "-A ISTIO_INBOUND -s 127.0.0.6/32 -i lo -p tcp -j RETURN") >= 1
    assert sidecar.loops() == []
    assert app.accepted()[0].peer == result.app_peer


@BOTH
def test_istio_1_5_tproxy_on_15001_with_upstream_127_0_0_1_8080_app_sees_127_0_0_1(podnet: PodNet) -> None:
    app = podnet.listen("app", 8080)
    podnet.load_iptables(istio_restore(ISTIO_TPROXY_GOLDEN, on_port=15001))
    add_policy_routes(podnet)
    sidecar = tproxy_sidecar(podnet, port=15001, upstream_target="127.0.0.1:8080")
    result = podnet.request_from_client(podnet.pod_ip, 8080)
    assert result.proxy_hops == ("envoy",) and result.app_listener == "app"
    assert result.app_peer is not None and result.app_peer[0] == "127.0.0.1"
    accepted = only(sidecar.accepted(), seq=1)
    assert accepted["local"] == accepted["original_dst"] == [podnet.pod_ip, 8080]
    assert app.accepted()[0].local == ("127.0.0.1", 8080)
    assert sidecar.loops() == []
