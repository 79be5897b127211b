"""Small wording helpers shared by the explanations of rules and routes."""

from __future__ import annotations

import ipaddress


def net_text(text: object) -> str:
    """`127.0.0.1/32` -> `127.0.0.1`; networks stay networks."""
    try:
        n = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return str(text)
    if n.prefixlen == n.max_prefixlen:
        return str(n.network_address)
    if n.prefixlen == 0:
        return "any address"
    return str(n)


def value_and_mask(text: str) -> tuple[int, str] | None:
    """`value[/mask]` as iptables accepts it (decimal or 0x hex): the value, and the mask as shown (`0x...`, or the
    text when it is not a number; empty when there is none or it is all ones). None when the value is not a number."""
    value, _, mask = text.partition("/")
    try:
        v = int(value, 0)
    except ValueError:
        return None
    if not mask:
        return v, ""
    try:
        m = int(mask, 0)
    except ValueError:
        return v, mask
    return v, "" if m == 0xFFFFFFFF else f"{m:#x}"


def number_text(text: str) -> str:
    """A mark or id as iptables accepts it (decimal or 0x hex) shown as `1337 (0x539)`; masks kept."""
    parsed = value_and_mask(text)
    if parsed is None:
        return text
    v, mask = parsed
    shown = f"{v} ({v:#x})" if v > 9 else str(v)
    return f"{shown} under mask {mask}" if mask else shown
