"""The engine predicts what the Linux kernel does with real connections.

Each case builds a client and a pod namespace, loads Istio's real rules (the
istio-cni plugin goldens for REDIRECT and TPROXY) or a focused ruleset,
makes one TCP connection, and checks that the engine - fed only with the
pod's own iptables-save / ip rule / ip route / sysctl output and its
listening sockets - predicts the same outcome, accepting socket, peer address
and local address.  See tests/kernel/conformance.py.
"""

from __future__ import annotations

import itertools

import pytest

from .conformance import TPROXY_ROUTES, Case, ListenSpec, assert_agrees, fixture, observe_kernel, predict
from .conftest import require_netns
from .netns import CLIENT_IP, POD_IP, PodNet

pytestmark = pytest.mark.kernel

REDIRECT = "corpus/istio-cni/plugin/basic.txt.golden"
TPROXY = "corpus/istio-cni/plugin/tproxy.txt.golden"

# Sockets of a sidecar pod.  REDIRECT mode: Envoy runs as 1337:1337.
REDIRECT_SOCKETS = (
    ListenSpec("envoy-inbound", 15006, uid=1337, gid=1337),
    ListenSpec("envoy-outbound", 15001, uid=1337, gid=1337),
    ListenSpec("envoy-tunnel", 15008, uid=1337, gid=1337),
    ListenSpec("pilot-agent-status", 15020, uid=1337, gid=1337),
    ListenSpec("envoy-health", 15021, uid=1337, gid=1337),
    ListenSpec("envoy-prometheus", 15090, uid=1337, gid=1337),
    ListenSpec("app", 8080, uid=1000, gid=1000),
)
# TPROXY mode: Envoy runs as uid 0, gid 1337, and its inbound listener is transparent.
TPROXY_SOCKETS = (
    ListenSpec("envoy-inbound", 15006, transparent=True, uid=0, gid=1337),
    ListenSpec("envoy-outbound", 15001, uid=0, gid=1337),
    ListenSpec("pilot-agent-status", 15020, uid=0, gid=1337),
    ListenSpec("app", 8080, uid=1000, gid=1000),
)
OUTSIDE = (ListenSpec("outside-http", 80, side="client"),)

CONNMARK_ONLY = """*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark
-A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark
COMMIT
"""
NO_RESTORE = """*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark
COMMIT
"""
DNAT_TO_LOOPBACK = """*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 8081 -j DNAT --to-destination 127.0.0.1:8080
COMMIT
"""
EMPTY = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
APP = (ListenSpec("app", 8080, uid=1000, gid=1000),)
LOCALNET_ON = (("net.ipv4.conf.all.route_localnet", "1"),)

CASES = [
    # --- REDIRECT (istio-cni plugin sidecar rules) ---------------------------------------------
    Case(
        "redirect: inbound to the app port is captured by Envoy's 15006",
        fixture(REDIRECT),
        POD_IP,
        8080,
        listeners=REDIRECT_SOCKETS,
        expect="envoy-inbound",
    ),
    Case(
        "redirect: inbound to a port nobody listens on is captured too",
        fixture(REDIRECT),
        POD_IP,
        9999,
        listeners=REDIRECT_SOCKETS,
        expect="envoy-inbound",
    ),
    Case(
        "redirect: excluded status port 15020 bypasses Envoy",
        fixture(REDIRECT),
        POD_IP,
        15020,
        listeners=REDIRECT_SOCKETS,
        expect="pilot-agent-status",
    ),
    Case(
        "redirect: excluded health port 15021 bypasses Envoy",
        fixture(REDIRECT),
        POD_IP,
        15021,
        listeners=REDIRECT_SOCKETS,
        expect="envoy-health",
    ),
    Case(
        "redirect: excluded metrics port 15090 bypasses Envoy",
        fixture(REDIRECT),
        POD_IP,
        15090,
        listeners=REDIRECT_SOCKETS,
        expect="envoy-prometheus",
    ),
    Case(
        "redirect: the tunnel port 15008 is not redirected",
        fixture(REDIRECT),
        POD_IP,
        15008,
        listeners=REDIRECT_SOCKETS,
        expect="envoy-tunnel",
    ),
    Case(
        "redirect: the app (uid 1000) calling out is captured to 15001",
        fixture(REDIRECT),
        CLIENT_IP,
        80,
        origin="pod",
        uid=1000,
        gid=1000,
        listeners=REDIRECT_SOCKETS,
        client_listeners=OUTSIDE,
        expect="envoy-outbound",
    ),
    Case(
        "redirect: Envoy's own uid 1337 bypasses outbound capture",
        fixture(REDIRECT),
        CLIENT_IP,
        80,
        origin="pod",
        uid=1337,
        gid=1337,
        listeners=REDIRECT_SOCKETS,
        client_listeners=OUTSIDE,
        expect="outside-http",
    ),
    Case(
        "redirect: gid 1337 alone also bypasses outbound capture",
        fixture(REDIRECT),
        CLIENT_IP,
        80,
        origin="pod",
        uid=1000,
        gid=1337,
        listeners=REDIRECT_SOCKETS,
        client_listeners=OUTSIDE,
        expect="outside-http",
    ),
    Case(
        "redirect: the app calling 127.0.0.1 is not captured",
        fixture(REDIRECT),
        "127.0.0.1",
        8080,
        origin="pod",
        uid=1000,
        gid=1000,
        listeners=REDIRECT_SOCKETS,
        expect="app",
    ),
    Case(
        "redirect: the app calling its own pod IP is not captured",
        fixture(REDIRECT),
        POD_IP,
        8080,
        origin="pod",
        uid=1000,
        gid=1000,
        listeners=REDIRECT_SOCKETS,
        expect="app",
    ),
    Case(
        "redirect: Envoy (uid 1337) calling the pod IP is redirected to its inbound 15006",
        fixture(REDIRECT),
        POD_IP,
        8080,
        origin="pod",
        uid=1337,
        gid=1337,
        listeners=REDIRECT_SOCKETS,
        expect="envoy-inbound",
    ),
    Case(
        "redirect: Envoy bound to 127.0.0.6 reaches the app, which sees 127.0.0.6",
        fixture(REDIRECT),
        POD_IP,
        8080,
        origin="pod",
        uid=1337,
        gid=1337,
        bind="127.0.0.6",
        listeners=REDIRECT_SOCKETS,
        expect="app",
    ),
    Case(
        "redirect: Envoy calling 127.0.0.1 (pre-1.10 inbound) reaches the app, which sees 127.0.0.1",
        fixture(REDIRECT),
        "127.0.0.1",
        8080,
        origin="pod",
        uid=1337,
        gid=1337,
        listeners=REDIRECT_SOCKETS,
        expect="app",
    ),
    Case(
        "redirect (nft backend): inbound is captured by 15006",
        fixture(REDIRECT),
        POD_IP,
        8080,
        listeners=REDIRECT_SOCKETS,
        backend="nft",
        expect="envoy-inbound",
    ),
    # --- TPROXY (istio-cni plugin TPROXY rules) ------------------------------------------------
    Case(
        "tproxy: inbound is handed to the transparent 15006 listener, keeping the original destination",
        fixture(TPROXY),
        POD_IP,
        8080,
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        expect="envoy-inbound",
    ),
    Case(
        "tproxy: inbound capture works without the policy route (the pod IP is local anyway)",
        fixture(TPROXY),
        POD_IP,
        8080,
        listeners=TPROXY_SOCKETS,
        expect="envoy-inbound",
    ),
    Case(
        "tproxy: excluded status port 15020 bypasses Envoy",
        fixture(TPROXY),
        POD_IP,
        15020,
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        expect="pilot-agent-status",
    ),
    Case(
        "tproxy: Envoy's original_src connection (mark 1337, bound to the client) reaches the app",
        fixture(TPROXY),
        POD_IP,
        8080,
        origin="pod",
        uid=0,
        gid=1337,
        bind=CLIENT_IP,
        transparent=True,
        mark=1337,
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        expect="app",
    ),
    Case(
        "tproxy: without `ip rule fwmark 1337 lookup 133` the app's SYN-ACK leaves via eth0",
        fixture(TPROXY),
        POD_IP,
        8080,
        origin="pod",
        uid=0,
        gid=1337,
        bind=CLIENT_IP,
        transparent=True,
        mark=1337,
        listeners=TPROXY_SOCKETS,
        expect="timeout",
    ),
    # TPROXY's verdict (ACCEPT) ends mangle PREROUTING before the CONNMARK --save-mark rule, so the
    # re-captured SYN's connection never gets ctmark 1337 and Envoy's own SYN-ACK leaves via eth0.
    Case(
        "tproxy: original_src without the mark is re-captured by TPROXY and the handshake never completes",
        fixture(TPROXY),
        POD_IP,
        8080,
        origin="pod",
        uid=0,
        gid=1337,
        bind=CLIENT_IP,
        transparent=True,
        mark=0,
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        expect="timeout",
    ),
    Case(
        "tproxy: Envoy bound to 127.0.0.6 is not re-captured and the app sees 127.0.0.6",
        fixture(TPROXY),
        POD_IP,
        8080,
        origin="pod",
        uid=0,
        gid=1337,
        bind="127.0.0.6",
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        expect="app",
    ),
    Case(
        "tproxy: Envoy (gid 1337) dialling the pod IP without a bind loops back into 15006 (Istio 1.6)",
        fixture(TPROXY),
        POD_IP,
        8080,
        origin="pod",
        uid=0,
        gid=1337,
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        expect="envoy-inbound",
    ),
    Case(
        "tproxy: the app calling its own pod IP is not captured",
        fixture(TPROXY),
        POD_IP,
        8080,
        origin="pod",
        uid=1000,
        gid=1000,
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        expect="app",
    ),
    Case(
        "tproxy (nft backend): original_src with mark 1337 reaches the app",
        fixture(TPROXY),
        POD_IP,
        8080,
        origin="pod",
        uid=0,
        gid=1337,
        bind=CLIENT_IP,
        transparent=True,
        mark=1337,
        listeners=TPROXY_SOCKETS,
        ip=TPROXY_ROUTES,
        backend="nft",
        expect="app",
    ),
    # --- CONNMARK and the policy route on their own ----------------------------------------------
    Case(
        "connmark: save on PREROUTING + restore on OUTPUT + route table 133 bring the SYN-ACK back",
        CONNMARK_ONLY,
        POD_IP,
        8080,
        origin="pod",
        bind=CLIENT_IP,
        transparent=True,
        mark=1337,
        listeners=APP,
        ip=TPROXY_ROUTES,
        expect="app",
    ),
    Case(
        "connmark: without --restore-mark the SYN-ACK carries no mark and leaves via eth0",
        NO_RESTORE,
        POD_IP,
        8080,
        origin="pod",
        bind=CLIENT_IP,
        transparent=True,
        mark=1337,
        listeners=APP,
        ip=TPROXY_ROUTES,
        expect="timeout",
    ),
    Case(
        "tcp_fwmark_accept=1: the accepted socket inherits mark 1337, so no CONNMARK is needed",
        EMPTY,
        POD_IP,
        8080,
        origin="pod",
        bind=CLIENT_IP,
        transparent=True,
        mark=1337,
        listeners=APP,
        ip=TPROXY_ROUTES,
        sysctls=(("net.ipv4.tcp_fwmark_accept", "1"),),
        expect="app",
    ),
    Case(
        "tcp_fwmark_accept=0 and no CONNMARK: the SYN-ACK leaves via eth0 despite the policy route",
        EMPTY,
        POD_IP,
        8080,
        origin="pod",
        bind=CLIENT_IP,
        transparent=True,
        mark=1337,
        listeners=APP,
        ip=TPROXY_ROUTES,
        expect="timeout",
    ),
    # --- route_localnet ------------------------------------------------------------------------
    Case(
        "route_localnet=0: a SYN DNATed to 127.0.0.1 from eth0 is a martian and dropped",
        DNAT_TO_LOOPBACK,
        POD_IP,
        8081,
        listeners=APP,
        expect="timeout",
    ),
    Case(
        "route_localnet=1: the SYN DNATed to 127.0.0.1 reaches the app",
        DNAT_TO_LOOPBACK,
        POD_IP,
        8081,
        listeners=APP,
        sysctls=LOCALNET_ON,
        expect="app",
    ),
    Case(
        "route_localnet=0: connecting from 127.0.0.6 to an address outside fails with EINVAL",
        EMPTY,
        CLIENT_IP,
        80,
        origin="pod",
        bind="127.0.0.6",
        client_listeners=OUTSIDE,
        expect="error",
    ),
]

_ports = itertools.count(41000)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_engine_predicts_the_kernel(case: Case) -> None:
    require_netns(case.backend)  # type: ignore[arg-type]
    sport = next(_ports)
    with PodNet(case.backend) as net:  # type: ignore[arg-type]
        kernel = observe_kernel(net, case, sport)
        engine, result = predict(net, case, sport)
    assert_agrees(kernel, engine, result, case)


def test_there_are_at_least_twenty_conformance_cases() -> None:
    assert len(CASES) >= 20
