"""Self-tests: mangle TPROXY interception, and the reply path of a transparent (original_src) connect.

The second half explores what Envoy's original_src filter relies on: a socket in the pod
bound with IP_TRANSPARENT to the *client's* address (10.80.0.1) and marked 1337 connects
to the app on pod_ip:8080.  The app's SYN-ACK is addressed to 10.80.0.1, which the main
table routes out of eth0 -- unless policy routing plus CONNMARK steer it to lo.
"""

from __future__ import annotations

import pytest

from tests.kernel.netns import ConnectResult, PodNet, restore_text

pytestmark = pytest.mark.kernel

BOTH = pytest.mark.parametrize("podnet", ["legacy", "nft"], indirect=True)

TPROXY = restore_text("mangle", "-A PREROUTING -p tcp -j TPROXY --on-port 15006 --tproxy-mark 1337/0xffffffff")

# Istio's rules for the reply path of TPROXY mode (tools/istio-iptables), reduced to the two that matter.
ISTIO_SAVE = "-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark"
ISTIO_RESTORE = "-A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark"
OUTPUT_SAVE = "-A OUTPUT -p tcp -m mark --mark 1337 -j CONNMARK --save-mark"
# Observation rules (no target): where did the app's packets (sport 8080) go?
SEEN_IN_MANGLE_OUTPUT_AS_ETH0 = "-A OUTPUT -o eth0 -p tcp -m tcp --sport 8080"
LEFT_VIA_ETH0 = "-A POSTROUTING -o eth0 -p tcp -m tcp --sport 8080"
LEFT_VIA_LO = "-A POSTROUTING -o lo -p tcp -m tcp --sport 8080"

UNEXPECTED_TIMEOUT = 1.0  # for the configurations that are expected to time out


def add_policy_routes(podnet: PodNet) -> None:
    podnet.ip("rule", "add", "fwmark", "1337", "lookup", "133")
    podnet.ip("route", "add", "local", "default", "dev", "lo", "table", "133")


def original_src_connect(
    podnet: PodNet,
    *,
    routes: bool,
    mangle: tuple[str, ...],
    mark: int = 1337,
    uid: int = 0,
    keep_caps: bool = False,
    timeout: float = 1.5,
) -> ConnectResult:
    """App on 8080; a transparent socket bound to the client IP, marked `mark`, connects to it."""
    podnet.listen("app", 8080)
    if routes:
        add_policy_routes(podnet)
    observe = (SEEN_IN_MANGLE_OUTPUT_AS_ETH0, LEFT_VIA_ETH0, LEFT_VIA_LO)
    podnet.load_iptables(restore_text("mangle", *mangle, *observe))
    return podnet.connect_from_pod(
        podnet.pod_ip,
        8080,
        uid=uid,
        gid=uid,
        bind=podnet.client_ip,
        transparent=True,
        mark=mark,
        keep_caps=keep_caps,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- TPROXY interception


@BOTH
def test_tproxy_delivers_to_transparent_listener_and_getsockname_shows_pod_ip_80(podnet: PodNet) -> None:
    app = podnet.listen("app", 80)
    tproxy = podnet.listen("inbound", 15006, transparent=True)
    podnet.load_iptables(TPROXY)
    result = podnet.connect_from_client(podnet.pod_ip, 80)
    assert result.connected and result.listener == "inbound"
    assert result.server_local == (podnet.pod_ip, 80)  # the socket keeps the original destination
    assert result.peer_seen_by_server == result.local
    [accepted] = tproxy.accepted(timeout=1)
    assert accepted.local == (podnet.pod_ip, 80)
    # No NAT and no conntrack-using rule: SO_ORIGINAL_DST has nothing to report.
    assert (accepted.original_dst, accepted.original_dst_error) == (None, "ENOENT")
    assert app.accepted() == []


@BOTH
def test_tproxy_mark_is_on_the_packet_when_it_reaches_input(podnet: PodNet) -> None:
    podnet.listen("inbound", 15006, transparent=True)
    podnet.load_iptables(
        restore_text(
            "mangle",
            "-A PREROUTING -p tcp -j TPROXY --on-port 15006 --tproxy-mark 1337/0xffffffff",
            "-A INPUT -p tcp --dport 80 -m mark --mark 1337",
        )
    )
    assert podnet.connect_from_client(podnet.pod_ip, 80).echoed
    assert podnet.packets("mangle", "-A INPUT") >= 3  # SYN, ACK, data all marked


@BOTH
def test_tproxy_to_a_listener_without_ip_transparent_drops_the_syn(podnet: PodNet) -> None:
    plain = podnet.listen("inbound", 15006, transparent=False)
    podnet.load_iptables(TPROXY)
    result = podnet.connect_from_client(podnet.pod_ip, 80, timeout=UNEXPECTED_TIMEOUT)
    assert result.outcome == "timeout"
    assert plain.accepted() == []


# --------------------------------------------------------------------------- original_src reply path


def test_transparent_bind_to_client_ip_without_policy_routes_times_out_syn_ack_leaves_via_eth0(
    podnet: PodNet,
) -> None:
    podnet.run_client(
        ["iptables-nft-restore"],
        input=restore_text(
            "filter",
            "-A INPUT -p tcp --sport 8080 --tcp-flags SYN,ACK SYN,ACK",
            "-A OUTPUT -p tcp --dport 8080 --tcp-flags RST RST",
        ),
    )
    result = original_src_connect(podnet, routes=False, mangle=(), timeout=UNEXPECTED_TIMEOUT)
    assert result.outcome == "timeout"
    assert result.local is not None and result.local[0] == podnet.client_ip  # the bind itself worked
    assert podnet.packets("mangle", LEFT_VIA_ETH0) >= 1
    assert podnet.packets("mangle", LEFT_VIA_LO) == 0
    # The real client received the app's SYN-ACK for a connection it never made, and reset it.
    assert podnet.packets("filter", "--tcp-flags SYN,ACK SYN,ACK", backend="nft", side="client") >= 1
    assert podnet.packets("filter", "--tcp-flags RST RST", backend="nft", side="client") >= 1


@BOTH
def test_istio_connmark_rules_with_policy_routes_connect_and_app_sees_client_ip(podnet: PodNet) -> None:
    """ip rule fwmark 1337 lookup 133 + local default dev lo table 133
    + mangle PREROUTING mark 1337 -> CONNMARK --save-mark + OUTPUT connmark 1337 -> --restore-mark."""
    result = original_src_connect(podnet, routes=True, mangle=(ISTIO_SAVE, ISTIO_RESTORE))
    assert result.connected and result.echoed
    assert result.local is not None
    assert result.peer_seen_by_server == result.local
    assert result.peer_seen_by_server[0] == podnet.client_ip  # the app sees the client's IP
    # The SYN went over lo and kept its mark into PREROUTING, so the save-mark rule fired there.
    assert podnet.packets("mangle", "--save-mark") >= 1
    assert podnet.packets("mangle", "--restore-mark") >= 1
    # Replies were rerouted to lo after the restore; none left through eth0...
    assert podnet.packets("mangle", LEFT_VIA_ETH0) == 0
    assert podnet.packets("mangle", LEFT_VIA_LO) >= 2
    # ...although mangle OUTPUT itself still saw them with the pre-reroute output device eth0.
    assert podnet.packets("mangle", SEEN_IN_MANGLE_OUTPUT_AS_ETH0) >= 2


@BOTH
def test_saving_the_mark_in_mangle_output_instead_of_prerouting_also_works(podnet: PodNet) -> None:
    result = original_src_connect(podnet, routes=True, mangle=(OUTPUT_SAVE, ISTIO_RESTORE))
    assert result.echoed and result.peer_seen_by_server == result.local


@BOTH
def test_tcp_fwmark_accept_with_policy_routes_works_without_any_connmark_rule(podnet: PodNet) -> None:
    """With net.ipv4.tcp_fwmark_accept=1 the accepted socket inherits the SYN's mark (1337),
    so the SYN-ACK and every reply are routed by table 133 to lo without CONNMARK."""
    podnet.sysctl("net.ipv4.tcp_fwmark_accept", 1)
    result = original_src_connect(podnet, routes=True, mangle=())
    assert result.echoed and result.peer_seen_by_server == result.local


@BOTH
def test_uid_1337_with_net_admin_gets_the_same_working_reply_path(podnet: PodNet) -> None:
    result = original_src_connect(podnet, routes=True, mangle=(ISTIO_SAVE, ISTIO_RESTORE), uid=1337, keep_caps=True)
    assert result.echoed and result.peer_seen_by_server == result.local


@pytest.mark.parametrize(
    ("routes", "mangle", "mark"),
    [
        pytest.param(True, (), 1337, id="policy-routes-only-replies-unmarked"),
        pytest.param(False, (ISTIO_SAVE, ISTIO_RESTORE), 1337, id="connmark-only-no-route-for-the-mark"),
        pytest.param(True, (ISTIO_RESTORE,), 1337, id="restore-without-save"),
        pytest.param(True, (ISTIO_SAVE,), 1337, id="save-without-restore"),
        pytest.param(True, (ISTIO_SAVE, ISTIO_RESTORE), 0, id="full-setup-but-socket-not-marked"),
    ],
)
def test_incomplete_reply_path_setups_time_out_with_syn_ack_via_eth0(
    podnet: PodNet, routes: bool, mangle: tuple[str, ...], mark: int
) -> None:
    result = original_src_connect(podnet, routes=routes, mangle=mangle, mark=mark, timeout=UNEXPECTED_TIMEOUT)
    assert result.outcome == "timeout"
    assert podnet.packets("mangle", LEFT_VIA_ETH0) >= 1
    assert podnet.packets("mangle", LEFT_VIA_LO) == 0
