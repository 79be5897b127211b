"""Small address helpers shared by the parsers and the simulator."""

from __future__ import annotations

import ipaddress

from meshviz.engine.core.model import IPAddress, IPNetwork


def parse_ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text.strip().strip("[]"))


def parse_net(text: str, family_hint: int | None = None) -> IPNetwork:
    """Parse `10.0.0.0/8`, `1.2.3.4` (host), `default`/`all`, `::/0`.

    Host bits are tolerated the way iptables and iproute2 tolerate them
    (`10.1.2.3/8` means 10.0.0.0/8).
    """
    t = text.strip()
    if t in ("default", "all", "any"):
        return ipaddress.ip_network("::/0" if family_hint == 6 else "0.0.0.0/0")
    if "/" in t:
        addr, _, plen = t.partition("/")
        if "." in plen or ":" in plen:  # netmask form 255.255.0.0
            return ipaddress.ip_network(f"{addr}/{plen}", strict=False)
        return ipaddress.ip_network(f"{addr}/{int(plen)}", strict=False)
    return ipaddress.ip_network(t, strict=False)


def split_host_port(text: str) -> tuple[IPAddress, int | None]:
    """`1.2.3.4:80`, `1.2.3.4`, `[::1]:80`, `::1`."""
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
        return parse_ip(host), port
    if t.count(":") == 1:
        host, _, port_text = t.partition(":")
        return parse_ip(host), int(port_text)
    return parse_ip(t), None
