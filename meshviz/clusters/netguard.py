"""Which Kubernetes API server addresses meshviz may contact: never loopback, link-local, cloud metadata,
multicast or unspecified addresses, and private ones only when the operator allows them.

A kubeconfig names a server; without this check meshviz could be pointed at its own Redis, PostgreSQL or the app
itself, or at a cloud metadata service, and its error messages would tell open ports from closed ones.  Every
address the host name resolves to is checked before any connection is made.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from meshviz.collect.errors import CollectError
from meshviz.collect.kube import UNREACHABLE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services (AWS, GCP, Azure, Alibaba, Oracle...) and their IPv6 forms.
METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("169.254.170.2/32"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)
METADATA_NAMES = ("metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal")
#: Shared address space (carrier-grade NAT) counts as private.
SHARED = ipaddress.ip_network("100.64.0.0/10")


def refusal(addr: IPAddress) -> str | None:
    """Why `addr` may not be contacted, or None."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for net in _allowed_networks():
        if addr in net:
            return None
    if any(addr in net for net in METADATA):
        return "a cloud metadata address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_unspecified or addr.is_multicast or addr.is_reserved:
        return "not a unicast address"
    private = addr.is_private or (isinstance(addr, ipaddress.IPv4Address) and addr in SHARED)
    if private and not settings.MESHVIZ_COLLECT_ALLOW_PRIVATE:
        return "a private address (set MESHVIZ_COLLECT_ALLOW_PRIVATE=true to allow API servers on private networks)"
    return None


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.MESHVIZ_COLLECT_ALLOWED_NETWORKS]


def _refused(server: str, why: str) -> CollectError:
    return CollectError("invalid_kubeconfig", "kubeconfig", f"the API server {server} is refused: it is {why}")


def check_literal(server: str) -> None:
    """Refuse a server URL whose host is a refused IP literal or a metadata name (no DNS: safe in a web request)."""
    host = urlsplit(server).hostname or ""
    if host.lower().rstrip(".") in METADATA_NAMES or host.lower() == "localhost":
        raise _refused(server, "a metadata or loopback name")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return
    why = refusal(addr)
    if why:
        raise _refused(server, why)


def check_resolved(server: str) -> None:
    """Resolve the server's host name and refuse it if any address it resolves to is refused."""
    check_literal(server)
    parts = urlsplit(server)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        # Uniform with every other failure to reach a server (no resolver oracle).
        raise CollectError("unreachable", "connect", UNREACHABLE) from None
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        why = refusal(addr)
        if why:
            raise _refused(server, why)
