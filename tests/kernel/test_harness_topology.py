"""Self-tests of the PodNet topology: addresses, routes, sysctls, teardown, speed."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.kernel.netns import (
    CLIENT_IP,
    CLIENT_IP2,
    POD_IP,
    HarnessError,
    PodNet,
    cleanup_stale_namespaces,
    netns_available,
)

pytestmark = pytest.mark.kernel


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split(" ", 1)[0] for line in out.splitlines() if line.strip()}


def _alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_netns_available_reports_ok_with_empty_reason(netns_required: None) -> None:
    assert netns_available() == (True, "")


def test_pod_has_eth0_with_pod_ip_and_default_route_via_client(podnet: PodNet) -> None:
    assert (podnet.client_ip, podnet.pod_ip, podnet.client_ip2) == (CLIENT_IP, POD_IP, CLIENT_IP2)
    pod_addrs = podnet.ip("-4", "-o", "addr", "show")
    assert f"eth0    inet {POD_IP}/24" in pod_addrs
    assert "lo    inet 127.0.0.1/8" in pod_addrs
    routes = podnet.ip_route_show_all()
    assert "default via 10.80.0.1 dev eth0" in routes
    assert "10.80.0.0/24 dev eth0 proto kernel scope link src 10.80.0.10" in routes
    assert "local 10.80.0.10 dev eth0 table local proto kernel scope host src 10.80.0.10" in routes
    client_addrs = podnet.ip_client("-4", "-o", "addr", "show", "dev", "eth0")
    assert f"inet {CLIENT_IP}/24" in client_addrs
    assert f"inet {CLIENT_IP2}/24" in client_addrs
    assert "default via 10.80.0.10 dev eth0" in podnet.ip_client("-4", "route", "show")


def test_both_veth_ends_are_named_eth0_and_nothing_appears_in_the_host(podnet: PodNet) -> None:
    assert "eth0@" in podnet.ip("-o", "link", "show", "dev", "eth0")
    assert "eth0@" in podnet.ip_client("-o", "link", "show", "dev", "eth0")
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert podnet.pod_ns not in host_links and podnet.client_ns not in host_links


def test_pod_rule_list_is_the_kernel_default(podnet: PodNet) -> None:
    rules = [line.split() for line in podnet.ip_rule_list().splitlines()]
    assert rules == [
        ["0:", "from", "all", "lookup", "local"],
        ["32766:", "from", "all", "lookup", "main"],
        ["32767:", "from", "all", "lookup", "default"],
    ]


def test_pod_sysctls_are_pinned_and_settable(podnet: PodNet) -> None:
    keys = [
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.default.rp_filter",
        "net.ipv4.conf.eth0.rp_filter",
        "net.ipv4.conf.all.route_localnet",
        "net.ipv4.ip_forward",
    ]
    assert podnet.sysctl_snapshot(keys) == "".join(f"{key} = 0\n" for key in keys)
    podnet.sysctl("net.ipv4.conf.eth0.rp_filter", 2)
    assert podnet.sysctl_get("net.ipv4.conf.eth0.rp_filter") == "2"
    # The client namespace is separate: its eth0 keeps rp_filter 0.
    assert podnet.sysctl_get("net.ipv4.conf.eth0.rp_filter", side="client") == "0"


def test_policy_routes_added_with_ip_show_up_in_rule_list_and_route_dump(podnet: PodNet) -> None:
    podnet.ip("rule", "add", "fwmark", "1337", "lookup", "133")
    podnet.ip("route", "add", "local", "default", "dev", "lo", "table", "133")
    assert "32765:\tfrom all fwmark 0x539 lookup 133" in podnet.ip_rule_list()
    assert "local default dev lo table 133 scope host" in podnet.ip_route_show_all()
    route = podnet.ip("route", "get", "10.80.0.1", "mark", "1337")
    assert route.startswith("local 10.80.0.1 dev lo table 133")


def test_load_iptables_and_save_round_trip(podnet: PodNet) -> None:
    podnet.load_iptables("*nat\n-A PREROUTING -p tcp -j REDIRECT --to-ports 15006\nCOMMIT\n")
    saved = podnet.iptables_save()
    assert "*nat" in saved
    assert "-A PREROUTING -p tcp -j REDIRECT --to-ports 15006" in saved
    with pytest.raises(HarnessError):
        podnet.load_iptables("*nat\n-A PREROUTING -j NO_SUCH_TARGET\nCOMMIT\n")


def test_namespaces_get_unique_names_with_pid_and_counter(netns_required: None) -> None:
    a, b = PodNet(), PodNet()
    assert a.pod_ns != b.pod_ns and a.client_ns != b.client_ns
    assert str(os.getpid()) in a.pod_ns


def test_teardown_leaves_no_namespace_and_no_process(netns_required: None) -> None:
    with PodNet() as pn:
        listener = pn.listen("app", 8080)
        stray = pn.run_pod(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"]).stdout.strip()
        names = {pn.pod_ns, pn.client_ns}
        pids = [listener.pid, int(stray)]
        assert names <= _netns_names()
        assert all(_alive(pid) for pid in pids)
    assert not names & _netns_names()
    assert not any(_alive(pid) for pid in pids)
    assert pn.closed


def test_teardown_happens_even_when_the_body_raises(netns_required: None) -> None:
    pn = PodNet()
    with pytest.raises(RuntimeError, match="boom"), pn:
        listener = pn.listen("app", 8080)
        raise RuntimeError("boom")
    assert not {pn.pod_ns, pn.client_ns} & _netns_names()
    assert not _alive(listener.pid)


def test_setup_and_teardown_take_well_under_a_second(netns_required: None) -> None:
    started = time.monotonic()
    with PodNet() as pn:
        pass
    elapsed = time.monotonic() - started
    assert pn.setup_seconds is not None
    assert elapsed < 1.0, f"PodNet setup+teardown took {elapsed:.3f}s"


def test_listener_that_cannot_bind_raises_with_the_errno(podnet: PodNet) -> None:
    podnet.listen("first", 8080)
    with pytest.raises(HarnessError, match="EADDRINUSE"):
        podnet.listen("second", 8080)


def test_stale_namespaces_of_dead_runs_are_cleaned_but_live_ones_kept(netns_required: None) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"mvz{dead.pid}x1p"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        with PodNet() as live:
            deleted = cleanup_stale_namespaces()
            assert stale in deleted
            assert {live.pod_ns, live.client_ns} <= _netns_names()
        assert stale not in _netns_names()
    finally:
        subprocess.run(["ip", "netns", "delete", stale], capture_output=True, check=False)
