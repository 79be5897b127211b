"""Self-tests: nat REDIRECT (inbound PREROUTING, outbound OUTPUT with -m owner) as the kernel does it."""

from __future__ import annotations

import pytest

from tests.kernel.netns import PodNet, restore_text

pytestmark = pytest.mark.kernel

BOTH = pytest.mark.parametrize("podnet", ["legacy", "nft"], indirect=True)

INBOUND_REDIRECT = restore_text("nat", "-A PREROUTING -p tcp -j REDIRECT --to-ports 15006")
OUTBOUND_REDIRECT = restore_text("nat", "-A OUTPUT -p tcp -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001")


@BOTH
def test_prerouting_redirect_delivers_to_15006_and_original_dst_is_pod_ip_80(podnet: PodNet) -> None:
    app = podnet.listen("app", 80)
    inbound = podnet.listen("inbound", 15006)
    podnet.load_iptables(INBOUND_REDIRECT)
    result = podnet.connect_from_client(podnet.pod_ip, 80)
    assert result.connected and result.listener == "inbound"
    assert result.peer_seen_by_server == result.local  # REDIRECT keeps the source: client IP
    assert result.server_local == (podnet.pod_ip, 15006)  # getsockname shows the rewritten port
    assert result.server_original_dst == (podnet.pod_ip, 80)
    [accepted] = inbound.accepted(timeout=1)
    assert accepted.original_dst == (podnet.pod_ip, 80)
    assert app.accepted() == []


@BOTH
def test_prerouting_redirect_catches_every_port_even_unbound_ones(podnet: PodNet) -> None:
    podnet.listen("inbound", 15006)
    podnet.load_iptables(INBOUND_REDIRECT)
    result = podnet.connect_from_client(podnet.pod_ip, 8081)  # nothing listens on 8081
    assert result.listener == "inbound"
    assert result.server_original_dst == (podnet.pod_ip, 8081)


@BOTH
def test_prerouting_redirect_rewrites_destination_to_primary_address_of_incoming_interface(
    podnet: PodNet,
) -> None:
    podnet.ip("addr", "add", "10.80.0.11/24", "dev", "eth0")  # a secondary pod address
    podnet.listen("inbound", 15006)
    podnet.load_iptables(INBOUND_REDIRECT)
    result = podnet.connect_from_client("10.80.0.11", 80)
    assert result.server_local == (podnet.pod_ip, 15006)  # not 10.80.0.11
    assert result.server_original_dst == ("10.80.0.11", 80)


@BOTH
def test_output_redirect_skips_uid_1337_but_redirects_uid_1000(podnet: PodNet) -> None:
    outbound = podnet.listen("outbound", 15001, uid=1337, gid=1337)
    upstream = podnet.listen("upstream", 80, side="client")
    podnet.load_iptables(OUTBOUND_REDIRECT)

    app = podnet.connect_from_pod(podnet.client_ip, 80, uid=1000, gid=1000)
    assert app.listener == "outbound"
    assert app.server_local == ("127.0.0.1", 15001)  # OUTPUT REDIRECT goes to 127.0.0.1
    assert app.peer_seen_by_server == app.local  # source stays the pod IP
    assert app.local is not None and app.local[0] == podnet.pod_ip
    assert app.server_original_dst == (podnet.client_ip, 80)

    sidecar = podnet.connect_from_pod(podnet.client_ip, 80, uid=1337, gid=1337)
    assert sidecar.listener == "upstream"  # not redirected: reached the real destination
    assert [a.listener for a in outbound.accepted(timeout=1)] == ["outbound"]
    assert [a.peer for a in upstream.accepted(timeout=1)] == [sidecar.local]


@BOTH
def test_output_redirect_skip_for_uid_1337_shows_as_refused_when_nothing_listens_upstream(
    podnet: PodNet,
) -> None:
    podnet.listen("outbound", 15001, uid=1337, gid=1337)
    podnet.load_iptables(OUTBOUND_REDIRECT)
    assert podnet.connect_from_pod(podnet.client_ip, 80, uid=1337, gid=1337).outcome == "refused"
    assert podnet.connect_from_pod(podnet.client_ip, 80, uid=1000, gid=1000).listener == "outbound"


def test_output_redirect_also_catches_connections_to_localhost(podnet: PodNet) -> None:
    podnet.listen("outbound", 15001, uid=1337, gid=1337)
    podnet.load_iptables(OUTBOUND_REDIRECT)
    result = podnet.connect_from_pod("127.0.0.1", 80, uid=1000, gid=1000)
    assert result.listener == "outbound"
    assert result.server_original_dst == ("127.0.0.1", 80)
    assert result.peer_seen_by_server is not None and result.peer_seen_by_server[0] == "127.0.0.1"


@BOTH
def test_owner_match_on_replies_sees_accepting_uid_but_syn_ack_belongs_to_listening_socket(
    podnet: PodNet,
) -> None:
    """Data replies carry the accepted socket (file made by accept() as uid 1000); the SYN-ACK
    is attributed to the listening socket, whose file was created as root before the drop."""
    podnet.listen("app", 8080, uid=1000, gid=1000)
    podnet.load_iptables(
        restore_text(
            "mangle",
            "-A OUTPUT -p tcp --sport 8080 --tcp-flags SYN,ACK SYN,ACK -m owner --uid-owner 1000",
            "-A OUTPUT -p tcp --sport 8080 --tcp-flags SYN,ACK SYN,ACK -m owner --uid-owner 0",
            "-A OUTPUT -p tcp --sport 8080 --tcp-flags PSH PSH -m owner --uid-owner 1000",
        )
    )
    assert podnet.connect_from_client(podnet.pod_ip, 8080).echoed
    counters = {rule: packets for rule, packets, _ in podnet.iptables_counters("mangle")}
    synack_1000, synack_0, data_1000 = counters.values()
    assert (synack_1000, synack_0) == (0, 1)
    assert data_1000 >= 1
