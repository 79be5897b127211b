"""The routing engine against the real kernel: `ip route get` is the oracle.

A namespace of our own (``mvrt<pid>p``) gets two veth devices whose peers
live in a second namespace of ours (``mvrt<pid>g``):

    eth0 10.80.0.10/24, 2001:db8:80::10/64     default via 10.80.0.1
    eth1 10.81.0.10/24

plus a set of policy rules and tables (Istio's `fwmark 1337 lookup 133` /
`local default dev lo table 133`, masks, uidrange, from/to, not, iif lo,
goto, nop, blackhole/unreachable/prohibit rules and routes, throw,
suppress_prefixlength, metrics, ipproto/dport, oif).  For every case the
test sets the case's sysctls, captures `ip rule list`, `ip -6 rule list`,
`ip route show table all` and the sysctls from /proc, feeds the *parsed*
captures to `route_output` / `route_input`, runs `ip -j route get` with the
same flow, and asserts both agree: success or the same errno, route type,
device, preferred source, gateway and table.

`ip route get` only asks the kernel's routing code; no packet is sent, and
every address used lives inside the two namespaces made here.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from meshviz.engine.routing.defaults import interfaces_from_routes
from meshviz.engine.routing.flow import Flow, RouteDecision
from meshviz.engine.routing.input import route_input
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.iproute2 import table_id
from meshviz.engine.routing.model import RouteType, RoutingConfig
from meshviz.engine.routing.output import route_output
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.sim.snapshot import Snapshot

pytestmark = pytest.mark.kernel

PREFIX = "mvrt"
POD_NS = f"{PREFIX}{os.getpid()}p"
PEER_NS = f"{PREFIX}{os.getpid()}g"
PLAIN_NS = f"{PREFIX}{os.getpid()}q"
PLAIN_PEER_NS = f"{PREFIX}{os.getpid()}h"

#: Built in the pod namespace, in order (`ip` arguments).
SETUP: tuple[str, ...] = (
    "link set lo up",
    f"link add eth0 type veth peer name p0 netns {PEER_NS}",
    f"link add eth1 type veth peer name p1 netns {PEER_NS}",
    "addr add 10.80.0.10/24 dev eth0",
    "addr add 10.81.0.10/24 dev eth1",
    "-6 addr add 2001:db8:80::10/64 dev eth0 nodad",
    "link set eth0 up",
    "link set eth1 up",
    "route add default via 10.80.0.1 dev eth0",
    # Istio TPROXY: what tools/common/tproxy installs (no priority: the kernel picks 32765).
    "rule add fwmark 1337 lookup 133",
    "route add local default dev lo table 133",
    "route add throw 10.94.0.0/16 table 133",
    "-6 rule add fwmark 1337 lookup 133",
    "-6 route add local ::/0 dev lo table 133",
    # uidrange
    "rule add pref 100 uidrange 1000-1999 lookup 135",
    "route add default via 10.81.0.1 dev eth1 table 135",
    "rule add pref 105 uidrange 0-0 to 10.74.0.0/16 lookup 144",
    "route add 10.74.0.0/16 via 10.81.0.1 dev eth1 table 144",
    # rule actions
    "rule add pref 101 to 10.77.0.0/16 blackhole",
    "rule add pref 102 to 10.78.0.0/16 unreachable",
    "rule add pref 103 to 10.79.0.0/16 prohibit",
    # fwmark with a mask
    "rule add pref 200 fwmark 0x100/0xf00 lookup 134",
    "route add default via 10.81.0.1 dev eth1 table 134",
    # from / to
    "rule add pref 300 from 10.81.0.10 lookup 136",
    "route add default via 10.81.0.1 dev eth1 table 136",
    "rule add pref 400 to 10.70.0.0/16 lookup 137",
    "route add 10.70.1.0/24 via 10.81.0.1 dev eth1 table 137",
    # not / iif lo
    "rule add pref 500 not iif lo lookup 138",
    "route add 10.71.0.0/16 via 10.81.0.1 dev eth1 table 138",
    "rule add pref 510 iif lo to 10.72.0.0/16 lookup 139",
    "route add 10.72.0.0/16 via 10.81.0.1 dev eth1 table 139",
    # goto skips a blackhole; nop
    "rule add pref 600 to 10.73.0.0/16 goto 700",
    "rule add pref 610 to 10.73.0.0/16 blackhole",
    "rule add pref 650 nop",
    "rule add pref 700 to 10.73.0.0/16 lookup 140",
    "route add 10.73.0.0/16 via 10.81.0.1 dev eth1 table 140",
    # suppress_prefixlength (the WireGuard pattern)
    "rule add pref 800 fwmark 0x2000 lookup main suppress_prefixlength 0",
    "rule add pref 801 fwmark 0x2000 lookup 141",
    "route add default via 10.81.0.1 dev eth1 table 141",
    # ipproto / dport, oif
    "rule add pref 900 ipproto udp dport 5353 lookup 142",
    "route add default via 10.81.0.1 dev eth1 table 142",
    "rule add pref 950 oif eth1 lookup 143",
    "route add default via 10.81.0.1 dev eth1 table 143",
    # main: error routes, metrics, longest prefix, a preferred source
    "route add unreachable 10.91.0.0/16",
    "route add prohibit 10.92.0.0/16",
    "route add blackhole 10.93.0.0/16",
    "route add 10.60.0.0/16 via 10.80.0.1 dev eth0 metric 100",
    "route add 10.60.0.0/16 via 10.81.0.1 dev eth1 metric 50",
    "route add 10.60.5.0/24 via 10.80.0.1 dev eth0 metric 200",
    "route add 10.62.0.0/16 via 10.80.0.1 dev eth0 src 10.81.0.10",
)

#: A pod with nothing but its address and default route: the kernel's
#: default rules and no custom local routes (its source check takes a short cut).
PLAIN_SETUP: tuple[str, ...] = (
    "link set lo up",
    f"link add eth0 type veth peer name p0 netns {PLAIN_PEER_NS}",
    f"link add eth1 type veth peer name p1 netns {PLAIN_PEER_NS}",
    "addr add 10.80.0.10/24 dev eth0",
    "addr add 10.81.0.10/24 dev eth1",
    "link set eth0 up",
    "link set eth1 up",
    "route add default via 10.80.0.1 dev eth0",
)

#: Written before every case (the case's own sysctls follow).
BASE_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.ip_forward", "0"),
    *(
        (f"net.ipv4.conf.{dev}.{name}", "0")
        for dev in ("all", "default", "lo", "eth0", "eth1")
        for name in ("rp_filter", "route_localnet", "src_valid_mark", "accept_local")
    ),
)

SYSCTL_CAPTURE = "grep -H . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding " + " ".join(
    f"/proc/sys/net/ipv4/conf/{dev}/{name}"
    for dev in ("all", "default", "lo", "eth0", "eth1")
    for name in ("rp_filter", "route_localnet", "src_valid_mark", "accept_local", "forwarding", "send_redirects")
)


@dataclass(frozen=True)
class Case:
    name: str
    get: str  # what follows `ip route get`
    expect: str  # "local lo", "unicast eth1", "broadcast eth0" or an errno name
    sysctls: tuple[tuple[str, str], ...] = ()
    before: tuple[str, ...] = ()  # ip commands applied before the lookup ...
    after: tuple[str, ...] = ()  # ... and undone after it
    code: str | None = None  # the engine's precise error code, when it matters
    family: int = 4
    plain: bool = False  # run in the PLAIN_SETUP namespace instead


FWD = (("net.ipv4.ip_forward", "1"),)
RL_ETH0 = (("net.ipv4.conf.eth0.route_localnet", "1"),)

CASES: tuple[Case, ...] = (
    # ---- output ----
    Case("output_connected_subnet_goes_out_eth0_with_pod_ip", "10.80.0.20", "unicast eth0"),
    Case("output_default_route_via_gateway", "1.2.3.4", "unicast eth0"),
    Case("output_to_pod_ip_is_local_via_lo", "10.80.0.10", "local lo"),
    Case("output_fwmark_1337_rule_selects_table_133_local_default", "1.2.3.4 mark 1337", "local lo"),
    Case(
        "output_fwmark_1337_without_the_rule_uses_main",
        "1.2.3.4 mark 1337",
        "unicast eth0",
        before=("rule del fwmark 1337 lookup 133",),
        after=("rule add fwmark 1337 lookup 133 pref 32765",),
    ),
    Case(
        "output_fwmark_1337_without_local_default_route_falls_through_to_main",
        "1.2.3.4 mark 1337",
        "unicast eth0",
        before=("route del local default dev lo table 133",),
        after=("route add local default dev lo table 133",),
    ),
    Case("output_fwmark_1338_does_not_match_rule_1337", "1.2.3.4 mark 1338", "unicast eth0"),
    Case("output_fwmark_with_given_local_source_stays_local", "1.2.3.4 mark 1337 from 10.80.0.10", "local lo"),
    Case("output_throw_route_in_table_133_continues_to_main", "10.94.0.1 mark 1337", "unicast eth0"),
    Case("output_fwmark_mask_0xf00_matches_0x1100", "1.2.3.4 mark 0x1100", "unicast eth1"),
    Case("output_fwmark_mask_0xf00_rejects_0x1200", "1.2.3.4 mark 0x1200", "unicast eth0"),
    Case("output_uidrange_1000_1999_matches_uid_1500", "1.2.3.4 uid 1500", "unicast eth1"),
    Case("output_uidrange_1000_1999_ignores_uid_2000", "1.2.3.4 uid 2000", "unicast eth0"),
    Case("output_uidrange_0_0_matches_root", "10.74.0.1", "unicast eth1"),
    Case("output_uidrange_0_0_ignores_uid_1", "10.74.0.1 uid 1", "unicast eth0"),
    Case("output_from_rule_matches_given_source", "1.2.3.4 from 10.81.0.10", "unicast eth1"),
    Case("output_to_rule_table_hit", "10.70.1.1", "unicast eth1"),
    Case("output_to_rule_table_miss_falls_through_to_main", "10.70.2.1", "unicast eth0"),
    Case("output_not_iif_lo_rule_does_not_match_output", "10.71.0.1", "unicast eth0"),
    Case("output_iif_lo_rule_matches_locally_generated", "10.72.0.1", "unicast eth1"),
    Case("output_goto_skips_the_blackhole_rule", "10.73.0.1", "unicast eth1"),
    Case("output_blackhole_rule_is_einval", "10.77.0.1", "EINVAL", code="BLACKHOLE"),
    Case("output_unreachable_rule_is_enetunreach", "10.78.0.1", "ENETUNREACH"),
    Case("output_prohibit_rule_is_eacces", "10.79.0.1", "EACCES"),
    Case("output_unreachable_route_is_ehostunreach", "10.91.0.1", "EHOSTUNREACH"),
    Case("output_prohibit_route_is_eacces", "10.92.0.1", "EACCES"),
    Case("output_blackhole_route_is_einval", "10.93.0.1", "EINVAL", code="BLACKHOLE"),
    Case("output_blackhole_route_with_oif_is_assumed_on_link", "10.93.0.1 oif eth0", "unicast eth0"),
    Case("output_suppress_prefixlength_0_skips_default_route", "1.2.3.4 mark 0x2000", "unicast eth1"),
    Case("output_suppress_prefixlength_0_keeps_subnet_route", "10.80.0.20 mark 0x2000", "unicast eth0"),
    Case("output_lower_metric_wins_for_same_prefix", "10.60.1.1", "unicast eth1"),
    Case("output_longest_prefix_beats_lower_metric", "10.60.5.1", "unicast eth0"),
    Case("output_route_src_is_preferred_source", "10.62.0.1", "unicast eth0"),
    Case("output_ipproto_udp_dport_5353_rule", "1.2.3.4 ipproto udp dport 5353", "unicast eth1"),
    Case("output_ipproto_tcp_dport_5353_not_matched", "1.2.3.4 ipproto tcp dport 5353", "unicast eth0"),
    Case("output_oif_eth1_rule_matches_bound_socket", "1.2.3.4 oif eth1", "unicast eth1"),
    Case("output_oif_lo_without_route_is_assumed_on_link", "1.2.3.4 oif lo", "unicast lo"),
    Case("output_subnet_broadcast", "10.80.0.255", "broadcast eth0"),
    Case("output_loopback_source_out_eth0_refused_route_localnet_0", "1.2.3.4 from 127.0.0.6", "EINVAL"),
    Case(
        "output_loopback_source_out_eth0_allowed_route_localnet_1",
        "1.2.3.4 from 127.0.0.6",
        "unicast eth0",
        sysctls=RL_ETH0,
    ),
    Case(
        "output_loopback_source_allowed_by_all_route_localnet_1",
        "1.2.3.4 from 127.0.0.6",
        "unicast eth0",
        sysctls=(("net.ipv4.conf.all.route_localnet", "1"),),
    ),
    Case("output_loopback_source_to_loopback_is_fine", "127.0.0.1 from 127.0.0.6", "local lo"),
    Case("output_non_local_source_is_enetunreach", "1.2.3.4 from 10.99.0.1", "ENETUNREACH"),
    # ---- input ----
    Case("input_to_pod_ip_is_local", "10.80.0.10 from 10.80.0.20 iif eth0", "local lo"),
    Case("input_fwmark_1337_tproxy_is_local_table_133", "1.2.3.4 from 10.80.0.20 iif eth0 mark 1337", "local lo"),
    Case(
        "input_not_local_forwarding_disabled_is_ehostunreach",
        "1.2.3.4 from 10.80.0.20 iif eth0",
        "EHOSTUNREACH",
        code="FORWARDING_DISABLED",
    ),
    Case(
        "input_not_local_forwarding_enabled_is_forwarded",
        "1.2.3.4 from 10.80.0.20 iif eth0",
        "unicast eth0",
        sysctls=FWD,
    ),
    Case("input_not_iif_lo_rule_matches_input", "10.71.0.1 from 10.80.0.20 iif eth0", "unicast eth1", sysctls=FWD),
    Case("input_iif_lo_rule_ignores_input", "10.72.0.1 from 10.80.0.20 iif eth0", "unicast eth0", sysctls=FWD),
    Case(
        "input_uidrange_0_0_rule_matches_input_lookups",
        "10.74.0.1 from 10.80.0.20 iif eth0",
        "unicast eth1",
        sysctls=FWD,
    ),
    Case(
        "input_unreachable_route_forwarding_enabled", "10.91.0.1 from 10.80.0.20 iif eth0", "EHOSTUNREACH", sysctls=FWD
    ),
    Case(
        "input_blackhole_route_forwarding_enabled",
        "10.93.0.1 from 10.80.0.20 iif eth0",
        "EINVAL",
        sysctls=FWD,
        code="BLACKHOLE",
    ),
    Case(
        "input_prohibit_rule_forwarding_disabled_is_ehostunreach",
        "10.79.0.1 from 10.80.0.20 iif eth0",
        "EHOSTUNREACH",
        code="FORWARDING_DISABLED",
    ),
    Case(
        "input_martian_loopback_destination_route_localnet_0",
        "127.0.0.1 from 10.80.0.20 iif eth0",
        "EINVAL",
        code="MARTIAN_DESTINATION",
    ),
    Case(
        "input_loopback_destination_route_localnet_1_is_local",
        "127.0.0.1 from 10.80.0.20 iif eth0",
        "local lo",
        sysctls=RL_ETH0,
    ),
    Case(
        "input_martian_loopback_source_route_localnet_0",
        "10.80.0.10 from 127.0.0.6 iif eth0",
        "EINVAL",
        code="MARTIAN_SOURCE",
    ),
    Case(
        "input_own_address_as_source_is_martian", "10.80.0.10 from 10.81.0.10 iif eth0", "EINVAL", code="MARTIAN_SOURCE"
    ),
    Case("input_zero_source_is_martian", "10.80.0.10 iif eth0", "EINVAL", code="MARTIAN_SOURCE"),
    Case("input_subnet_broadcast_is_delivered", "10.80.0.255 from 10.80.0.20 iif eth0", "broadcast lo"),
    Case(
        "input_rp_filter_strict_source_routed_via_other_device",
        "10.80.0.10 from 10.80.0.20 iif eth1",
        "EINVAL",
        sysctls=(("net.ipv4.conf.all.rp_filter", "1"),),
        code="RP_FILTER",
    ),
    Case(
        "input_rp_filter_strict_source_routed_via_same_device",
        "10.80.0.10 from 10.80.0.20 iif eth0",
        "local lo",
        sysctls=(("net.ipv4.conf.all.rp_filter", "1"),),
    ),
    Case(
        "input_rp_filter_loose_accepts_other_device",
        "10.80.0.10 from 10.80.0.20 iif eth1",
        "local lo",
        sysctls=(("net.ipv4.conf.all.rp_filter", "2"),),
    ),
    Case(
        "input_rp_filter_loose_rejects_unroutable_source",
        "10.80.0.10 from 10.91.0.1 iif eth0",
        "EINVAL",
        sysctls=(("net.ipv4.conf.all.rp_filter", "2"),),
        code="RP_FILTER",
    ),
    Case(
        "input_rp_filter_strict_ignores_mark_without_src_valid_mark",
        "10.80.0.10 from 10.99.0.5 iif eth1 mark 0x1100",
        "EINVAL",
        sysctls=(("net.ipv4.conf.eth1.rp_filter", "1"),),
        code="RP_FILTER",
    ),
    Case(
        "input_rp_filter_strict_uses_mark_with_src_valid_mark",
        "10.80.0.10 from 10.99.0.5 iif eth1 mark 0x1100",
        "local lo",
        sysctls=(("net.ipv4.conf.eth1.rp_filter", "1"), ("net.ipv4.conf.eth1.src_valid_mark", "1")),
    ),
    # ---- a plain pod: default rules only ----
    Case("plain_output_default_route", "1.2.3.4", "unicast eth0", plain=True),
    Case("plain_output_pod_ip_is_local", "10.80.0.10", "local lo", plain=True),
    Case(
        "plain_input_loopback_source_with_route_localnet_not_an_interface_address_is_accepted",
        "10.80.0.10 from 127.0.0.6 iif eth0",
        "local lo",
        sysctls=(("net.ipv4.conf.all.route_localnet", "1"),),
        plain=True,
    ),
    Case(
        "plain_input_loopback_source_with_route_localnet_127_0_0_1_is_martian",
        "10.80.0.10 from 127.0.0.1 iif eth0",
        "EINVAL",
        sysctls=(("net.ipv4.conf.all.route_localnet", "1"),),
        code="MARTIAN_SOURCE",
        plain=True,
    ),
    Case(
        "plain_input_own_address_as_source_is_martian",
        "10.80.0.10 from 10.81.0.10 iif eth0",
        "EINVAL",
        code="MARTIAN_SOURCE",
        plain=True,
    ),
    Case(
        "plain_input_rp_filter_strict_other_device",
        "10.80.0.10 from 10.80.0.20 iif eth1",
        "EINVAL",
        sysctls=(("net.ipv4.conf.all.rp_filter", "1"),),
        code="RP_FILTER",
        plain=True,
    ),
    Case(
        "plain_input_forwarding_enabled",
        "1.2.3.4 from 10.81.0.20 iif eth1",
        "unicast eth0",
        sysctls=FWD,
        plain=True,
    ),
    # ---- IPv6 ----
    Case("ipv6_output_connected_prefix", "2001:db8:80::20", "unicast eth0", family=6),
    Case("ipv6_output_without_route_is_enetunreach", "2001:db8:99::1", "ENETUNREACH", family=6),
    Case("ipv6_output_fwmark_1337_is_local_table_133", "2001:db8:99::1 mark 1337", "local lo", family=6),
    Case("ipv6_output_loopback_is_local", "::1", "local lo", family=6),
)

_ERRNO_BY_TEXT = {
    os.strerror(getattr(errno, n)): n
    for n in ("EINVAL", "ENETUNREACH", "EHOSTUNREACH", "EACCES", "EXDEV", "ENODEV", "EPERM")
}


# --------------------------------------------------------------------------
# Namespace plumbing
# --------------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _ip(ns: str, cmd: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", "-n", ns, *shlex.split(cmd)], check=check)


def _exec(ns: str, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", "netns", "exec", ns, *args], check=check)


def _unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (platform is {sys.platform})"
    if os.geteuid() != 0:
        return "the route-get oracle needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def _cleanup_stale() -> None:
    """Delete namespaces of this test whose creating process is gone."""
    listing = _run(["ip", "netns", "list"], check=False).stdout
    for line in listing.splitlines():
        name = line.split(" ", 1)[0]
        pid = name[len(PREFIX) : -1]
        if not name.startswith(PREFIX) or not pid.isdigit() or name[-1] not in "pgqh":
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _run(["ip", "netns", "delete", name], check=False)
        except PermissionError:
            pass


@contextlib.contextmanager
def _namespace_pair(pod: str, peer: str, setup: tuple[str, ...]) -> Iterator[str]:
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)
    _cleanup_stale()
    created: list[str] = []
    try:
        for ns in (peer, pod):
            add = _run(["ip", "netns", "add", ns], check=False)
            if add.returncode != 0:
                msg = f"cannot create a network namespace: {add.stderr.strip()}"
                if _in_ci():
                    pytest.fail(f"kernel tests must run in CI (CI=true, root) but {msg}", pytrace=False)
                pytest.skip(msg)
            created.append(ns)
        _ip(peer, "link set lo up")
        for cmd in setup:
            _ip(pod, cmd)
        for peer_dev in ("p0", "p1"):
            _ip(peer, f"link set {peer_dev} up")
        yield pod
    finally:
        for ns in reversed(created):
            _run(["ip", "netns", "delete", ns], check=False)


@pytest.fixture(scope="module")
def pod_ns() -> Iterator[str]:
    with _namespace_pair(POD_NS, PEER_NS, SETUP) as ns:
        yield ns


@pytest.fixture(scope="module")
def plain_ns() -> Iterator[str]:
    with _namespace_pair(PLAIN_NS, PLAIN_PEER_NS, PLAIN_SETUP) as ns:
        yield ns


# --------------------------------------------------------------------------
# Capturing, asking the kernel, asking the engine
# --------------------------------------------------------------------------


def _set_sysctls(ns: str, values: tuple[tuple[str, str], ...]) -> None:
    _exec(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values)])


def _capture(ns: str) -> tuple[str, str, str]:
    rules = (
        "$ ip rule list\n"
        + _exec(ns, ["ip", "rule", "list"]).stdout
        + "$ ip -6 rule list\n"
        + _exec(ns, ["ip", "-6", "rule", "list"]).stdout
    )
    routes = "$ ip route show table all\n" + _exec(ns, ["ip", "route", "show", "table", "all"]).stdout
    routes += "$ ip -6 route show table all\n" + _exec(ns, ["ip", "-6", "route", "show", "table", "all"]).stdout
    sysctl = _exec(ns, ["sh", "-c", SYSCTL_CAPTURE]).stdout
    return rules, routes, sysctl


def _snapshot(rules_text: str, routes_text: str, sysctl_text: str) -> Snapshot:
    rules = parse_ip_rules(rules_text, source="ip-rule")
    routes = parse_ip_routes(routes_text, source="ip-route")
    sysctls = parse_sysctls(sysctl_text, source="sysctl")
    problems = [str(e) for e in (*rules.errors, *routes.errors, *sysctls.errors)]
    assert not problems, "captured output did not parse:\n" + "\n".join(problems)
    names = tuple(dict([*rules.table_names, *routes.table_names]).items())
    return Snapshot(
        routing=RoutingConfig(rules=rules.rules, routes=routes.routes, table_names=names),
        sysctls=sysctls.sysctls,
        interfaces=interfaces_from_routes(routes.routes),
    )


def _flow(get: str) -> Flow:
    toks = get.split()
    kw: dict[str, str] = dict(zip(toks[1::2], toks[2::2], strict=True))
    return Flow(
        dst=ipaddress.ip_address(toks[0]),
        src=ipaddress.ip_address(kw["from"]) if "from" in kw else None,
        mark=int(kw.get("mark", "0"), 0),
        iif=kw.get("iif"),
        oif=kw.get("oif"),
        uid=int(kw["uid"]) if "uid" in kw else None,
        protocol=kw.get("ipproto"),
        sport=int(kw.get("sport", "0")),
        dport=int(kw.get("dport", "0")),
    )


@dataclass(frozen=True)
class KernelAnswer:
    errno: str | None
    route: dict[str, object]

    def describe(self) -> str:
        if self.errno:
            return self.errno
        r = self.route
        return f"{r.get('type', 'unicast')} {r.get('dev')}"


def _kernel(ns: str, case: Case) -> KernelAnswer:
    fam = ["-6"] if case.family == 6 else []
    proc = _exec(ns, ["ip", *fam, "-j", "route", "get", *case.get.split()], check=False)
    if proc.returncode != 0:
        text = proc.stderr.strip()
        msg = text.split(":", 1)[1].strip() if text.startswith("RTNETLINK answers:") else text
        if msg not in _ERRNO_BY_TEXT:
            raise AssertionError(f"unexpected `ip route get` failure: {text!r}")
        return KernelAnswer(_ERRNO_BY_TEXT[msg], {})
    data = json.loads(proc.stdout)
    assert isinstance(data, list) and len(data) == 1, proc.stdout
    return KernelAnswer(None, data[0])


def _compare(case: Case, flow: Flow, kernel: KernelAnswer, engine: RouteDecision) -> list[str]:
    diffs: list[str] = []
    if kernel.errno is not None:
        if engine.ok:
            diffs.append(f"kernel refuses ({kernel.errno}) but the engine routes: {engine.describe()}")
        elif engine.error == "RP_FILTER" and kernel.errno == "EXDEV":
            pass  # kernels before 6.13 report a reverse-path failure as EXDEV, later ones as EINVAL
        elif engine.errno != kernel.errno:
            diffs.append(f"kernel errno {kernel.errno}, engine {engine.error} (errno {engine.errno})")
        return diffs
    if not engine.ok:
        return [f"kernel routes ({kernel.describe()}) but the engine refuses: {engine.error}"]
    r = kernel.route
    ktype = str(r.get("type", "unicast"))
    if engine.type is None or engine.type.value != ktype:
        diffs.append(f"type: kernel {ktype}, engine {engine.type}")
    if r.get("dev") != engine.dev:
        diffs.append(f"dev: kernel {r.get('dev')}, engine {engine.dev}")
    kgw = r.get("gateway")
    egw = str(engine.gateway) if engine.gateway is not None else None
    if kgw != egw:
        diffs.append(f"gateway: kernel {kgw}, engine {egw}")
    if flow.iif is None:
        want_src = r.get("prefsrc", str(flow.src) if flow.src is not None else None)
        got_src = str(engine.src) if engine.src is not None else None
        if want_src != got_src:
            diffs.append(f"preferred source: kernel {want_src}, engine {got_src}")
    if "table" in r and engine.type in (RouteType.UNICAST, RouteType.LOCAL):
        ktable = table_id(str(r["table"]))
        if engine.table != ktable:
            diffs.append(f"table: kernel {r['table']} ({ktable}), engine {engine.table}")
    return diffs


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_route_get_oracle(request: pytest.FixtureRequest, case: Case) -> None:
    pod_ns: str = request.getfixturevalue("plain_ns" if case.plain else "pod_ns")
    for cmd in case.before:
        _ip(pod_ns, cmd)
    try:
        _set_sysctls(pod_ns, BASE_SYSCTLS + case.sysctls)
        rules_text, routes_text, sysctl_text = _capture(pod_ns)
        kernel = _kernel(pod_ns, case)
    finally:
        for cmd in case.after:
            with contextlib.suppress(RuntimeError):
                _ip(pod_ns, cmd)
    snapshot = _snapshot(rules_text, routes_text, sysctl_text)
    flow = _flow(case.get)
    engine = route_input(snapshot, flow) if flow.iif else route_output(snapshot, flow)

    report = (
        f"\n`ip route get {case.get}`\n  kernel: {kernel.errno or json.dumps(kernel.route)}\n"
        f"  engine: {engine.describe()} (error {engine.error})\n  why:\n    " + "\n    ".join(engine.explanation)
    )
    diffs = _compare(case, flow, kernel, engine)
    assert not diffs, "engine and kernel disagree: " + "; ".join(diffs) + report
    # The scenario is what its name says (guards against a setup that silently changed).
    answered = "EINVAL" if kernel.errno == "EXDEV" and case.code == "RP_FILTER" else kernel.describe()
    assert answered == case.expect, f"kernel answered {kernel.describe()}, case expects {case.expect}" + report
    if case.code is not None:
        assert engine.error == case.code, f"engine code {engine.error}, expected {case.code}" + report


def test_oracle_has_enough_cases() -> None:
    assert len(CASES) >= 25
    assert sum(1 for c in CASES if " iif " in f" {c.get} ") >= 10
