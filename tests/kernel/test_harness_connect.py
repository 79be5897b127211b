"""Self-tests of the listener/connector stand-ins on plain (un-intercepted) paths."""

from __future__ import annotations

import pytest

from tests.kernel.netns import PodNet, restore_text

pytestmark = pytest.mark.kernel

BOTH = pytest.mark.parametrize("podnet", ["legacy", "nft"], indirect=True)


def test_plain_client_connection_reaches_listener_and_app_sees_client_ip(podnet: PodNet) -> None:
    app = podnet.listen("app", 8080)
    result = podnet.connect_from_client(podnet.pod_ip, 8080)
    assert result.outcome == "connected" and result.errno is None
    assert result.echoed and result.echo_error is None
    assert result.listener == "app"
    assert result.local is not None and result.local[0] == podnet.client_ip
    assert result.peer_seen_by_server == result.local  # no NAT anywhere: the app sees the client
    assert result.server_local == (podnet.pod_ip, 8080)
    [accepted] = app.accepted(timeout=1)
    assert accepted.peer == result.local
    assert accepted.local == (podnet.pod_ip, 8080)


def test_without_any_iptables_rule_so_original_dst_fails_with_enoent(podnet: PodNet) -> None:
    """No table loaded -> conntrack is not active in the namespace -> no original destination."""
    app = podnet.listen("app", 8080)
    assert podnet.connect_from_client(podnet.pod_ip, 8080).connected
    [accepted] = app.accepted(timeout=1)
    assert accepted.original_dst is None
    assert accepted.original_dst_error == "ENOENT"


NAT_CHAINS_ONLY = (
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
)


@BOTH
def test_a_nat_table_without_rules_does_not_switch_conntrack_on(podnet: PodNet) -> None:
    """Conntrack is enabled per namespace by the rules that need it, not by the table's existence."""
    podnet.load_iptables(NAT_CHAINS_ONLY)
    app = podnet.listen("app", 8080)
    assert podnet.connect_from_client(podnet.pod_ip, 8080).connected
    assert app.accepted(timeout=1)[0].original_dst_error == "ENOENT"


@BOTH
def test_a_conntrack_match_switches_conntrack_on_and_original_dst_is_the_real_destination(
    podnet: PodNet,
) -> None:
    podnet.load_iptables(restore_text("filter", "-A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT"))
    app = podnet.listen("app", 8080)
    result = podnet.connect_from_client(podnet.pod_ip, 8080)
    assert result.server_original_dst == (podnet.pod_ip, 8080)  # no NAT: original == actual
    assert app.accepted(timeout=1)[0].original_dst == (podnet.pod_ip, 8080)


def test_second_client_address_reaches_the_pod_and_is_what_the_app_sees(podnet: PodNet) -> None:
    podnet.listen("app", 8080)
    result = podnet.connect_from_client(podnet.pod_ip, 8080, src=podnet.client_ip2, sport=40123)
    assert result.connected
    assert result.peer_seen_by_server == (podnet.client_ip2, 40123)


def test_several_listeners_each_record_only_their_own_connections(podnet: PodNet) -> None:
    a = podnet.listen("a", 8080)
    b = podnet.listen("b", 9090, addr=podnet.pod_ip)
    assert podnet.connect_from_client(podnet.pod_ip, 8080).listener == "a"
    assert podnet.connect_from_client(podnet.pod_ip, 9090).listener == "b"
    assert podnet.connect_from_client(podnet.pod_ip, 8080).listener == "a"
    assert [x.listener for x in a.accepted(timeout=1, count=2)] == ["a", "a"]
    assert [x.listener for x in b.accepted(timeout=1)] == ["b"]


def test_port_without_listener_is_refused(podnet: PodNet) -> None:
    result = podnet.connect_from_client(podnet.pod_ip, 8081)
    assert result.outcome == "refused"
    assert result.errno == "ECONNREFUSED"
    assert not result.echoed


@BOTH
def test_drop_rule_gives_timeout(podnet: PodNet) -> None:
    podnet.listen("app", 8080)
    podnet.load_iptables(restore_text("filter", "-A INPUT -p tcp --dport 8080 -j DROP"))
    result = podnet.connect_from_client(podnet.pod_ip, 8080, timeout=1.0)
    assert result.outcome == "timeout"
    assert result.elapsed is not None and result.elapsed >= 0.9
    assert result.local is not None and result.local[0] == podnet.client_ip  # bound even in SYN-SENT
    assert podnet.packets("filter", "-j DROP") >= 1


@pytest.mark.parametrize(
    ("reject_with", "outcome", "errno"),
    [
        ("", "refused", "ECONNREFUSED"),  # default icmp-port-unreachable
        ("--reject-with tcp-reset", "refused", "ECONNREFUSED"),
        ("--reject-with icmp-host-unreachable", "unreachable", "EHOSTUNREACH"),
        ("--reject-with icmp-net-unreachable", "unreachable", "ENETUNREACH"),
        ("--reject-with icmp-admin-prohibited", "unreachable", "EHOSTUNREACH"),
    ],
)
def test_reject_variants_map_to_connect_errors(podnet: PodNet, reject_with: str, outcome: str, errno: str) -> None:
    podnet.listen("app", 8080)
    podnet.load_iptables(restore_text("filter", f"-A INPUT -p tcp --dport 8080 -j REJECT {reject_with}".strip()))
    result = podnet.connect_from_client(podnet.pod_ip, 8080)
    assert (result.outcome, result.errno) == (outcome, errno)


def test_connect_from_pod_to_its_own_ip_goes_over_lo_and_app_sees_pod_ip(podnet: PodNet) -> None:
    podnet.listen("app", 8080)
    result = podnet.connect_from_pod(podnet.pod_ip, 8080)
    assert result.connected
    assert result.peer_seen_by_server is not None and result.peer_seen_by_server[0] == podnet.pod_ip


def test_connect_from_pod_reaches_a_listener_in_the_client_namespace(podnet: PodNet) -> None:
    upstream = podnet.listen("upstream", 80, side="client")
    result = podnet.connect_from_pod(podnet.client_ip, 80, uid=1000, gid=1000)
    assert result.listener == "upstream"
    assert result.peer_seen_by_server == result.local
    assert upstream.accepted(timeout=1)[0].peer[0] == podnet.pod_ip


def test_uid_1337_without_capabilities_cannot_set_so_mark(podnet: PodNet) -> None:
    result = podnet.connect_from_pod(podnet.client_ip, 80, uid=1337, gid=1337, mark=1337)
    assert (result.outcome, result.errno, result.stage) == ("error", "EPERM", "SO_MARK")


def test_uid_1337_without_capabilities_cannot_set_ip_transparent(podnet: PodNet) -> None:
    result = podnet.connect_from_pod(podnet.client_ip, 80, uid=1337, gid=1337, transparent=True)
    assert (result.outcome, result.errno, result.stage) == ("error", "EPERM", "IP_TRANSPARENT")


def test_uid_1337_keeping_net_admin_can_set_so_mark_like_a_sidecar(podnet: PodNet) -> None:
    podnet.listen("upstream", 80, side="client")
    result = podnet.connect_from_pod(podnet.client_ip, 80, uid=1337, gid=1337, mark=1337, keep_caps=True)
    assert result.connected and result.listener == "upstream"


def test_non_local_bind_without_ip_transparent_is_eaddrnotavail(podnet: PodNet) -> None:
    result = podnet.connect_from_pod(podnet.pod_ip, 8080, bind=podnet.client_ip)
    assert (result.outcome, result.errno, result.stage) == ("error", "EADDRNOTAVAIL", "bind")


def test_listener_dropped_to_uid_accepts_as_that_uid(podnet: PodNet) -> None:
    app = podnet.listen("app", 8080, uid=1000, gid=1000)
    assert podnet.connect_from_client(podnet.pod_ip, 8080).connected
    assert app.accepted(timeout=1)[0].uid == 1000


def test_udp_listener_answers_and_sees_the_client_address(podnet: PodNet) -> None:
    dns = podnet.listen("dns", 5353, proto="udp")
    result = podnet.udp_send("client", podnet.pod_ip, 5353)
    assert result.connected
    assert result.peer_seen_by_server == result.local
    assert dns.accepted(timeout=1)[0].peer == result.local
