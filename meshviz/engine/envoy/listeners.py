"""Which of Envoy's listeners a connection reaches: by address, and the virtual listeners' hand-off (use_original_dst)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from meshviz.engine.core.model import IPAddress
from meshviz.engine.envoy.model import (
    EnvoyConfig,
    Listener,
)

_ANY_V4 = ipaddress.ip_network("0.0.0.0/0")
_ANY_V6 = ipaddress.ip_network("::/0")
# What Envoy matches a non-IP (unix socket) address as: only the catch-all ranges match it.
_FAKE_ADDRESS = ipaddress.ip_address("255.255.255.255")


def _ip(value: IPAddress | str) -> IPAddress:
    return value if not isinstance(value, str) else ipaddress.ip_address(value.strip().strip("[]"))


def _hp(ip: IPAddress, port: int | None) -> str:
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{host}:{port}" if port is not None else host


# --------------------------------------------------------------------------
# Listeners
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerSelection:
    listener: Listener | None
    explanation: tuple[str, ...] = ()


def _socket_listeners(config: EnvoyConfig) -> list[Listener]:
    return [lst for lst in config.listeners if any(a.kind == "socket" for a in lst.addresses)]


def _find_by_address(candidates: Sequence[Listener], ip: IPAddress, port: int) -> tuple[Listener | None, str]:
    """Exact ip:port first, then the wildcard of the same family (or `::` with ipv4_compat)."""
    for lst in candidates:
        for a in lst.addresses:
            aip = a.ip
            if aip is not None and a.port == port and aip == ip:
                return lst, f"exact address {_hp(ip, port)}"
    for lst in candidates:
        for a in lst.addresses:
            aip = a.ip
            if aip is None or a.port != port or not aip.is_unspecified:
                continue
            if aip.version == ip.version:
                return lst, f"wildcard address {a.describe()}"
            if ip.version == 4 and aip.version == 6 and a.ipv4_compat:
                return lst, f"wildcard address {a.describe()} (ipv4_compat)"
    return None, ""


def _unusable_note(config: EnvoyConfig, ip: IPAddress, port: int, usable: Sequence[Listener]) -> list[str]:
    """Explain listeners on that address that exist but cannot take the connection."""
    notes = []
    seen: set[tuple[str, str]] = set()
    taken = {id(lst) for lst in usable}  # by identity: comparing listeners field by field is quadratic work
    for lst in _socket_listeners(config):
        if id(lst) in taken:
            continue
        for a in lst.addresses:
            aip = a.ip
            if aip is None or a.port != port or not (aip == ip or (aip.is_unspecified and aip.version == ip.version)):
                continue
            key = (lst.name, lst.state)
            if key in seen:
                continue
            seen.add(key)
            if lst.state == "error":
                notes.append(
                    f"listener {lst.describe()} failed to load (error_state) and is not used: {lst.error_detail}"
                )
            elif lst.state == "warming":
                notes.append(f"listener {lst.describe()} is still warming and does not accept connections yet")
            elif lst.state == "draining":
                notes.append(f"listener {lst.describe()} is draining and takes no new connections")
    return notes


def select_listener(
    config: EnvoyConfig,
    dst_ip: IPAddress | str,
    dst_port: int,
    *,
    handed_off_from: Listener | None = None,
) -> ListenerSelection:
    """The listener that accepts a TCP connection arriving on (dst_ip, dst_port).

    Only active listeners with `bind_to_port` (the default) own a listening
    socket.  With `handed_off_from`, this is instead the `use_original_dst`
    hand-off lookup (see `select_handoff`).
    """
    if handed_off_from is not None:
        return select_handoff(config, handed_off_from, (dst_ip, dst_port))
    ip = _ip(dst_ip)
    usable = [lst for lst in _socket_listeners(config) if lst.state == "active" and lst.bind_to_port]
    lst, how = _find_by_address(usable, ip, dst_port)
    notes = _unusable_note(config, ip, dst_port, usable)
    if lst is None:
        passive = [
            x.name
            for x in _socket_listeners(config)
            if x.state == "active"
            and not x.bind_to_port
            and any(a.ip is not None and a.port == dst_port for a in x.addresses)
        ]
        expl = [
            f"no listener owns a socket on {_hp(ip, dst_port)}: the kernel has nothing listening there (connection refused)"
        ]
        if passive:
            expl.append(
                "listeners with bind_to_port: false on that port only receive connections handed off by a "
                f"use_original_dst listener: {', '.join(passive[:5])}"
            )
        return ListenerSelection(None, tuple(notes + expl))
    expl = [f"listener {lst.describe()} accepts {_hp(ip, dst_port)} ({how})"]
    return ListenerSelection(lst, tuple(notes + expl))


def listener_for(
    config: EnvoyConfig,
    dst_ip: IPAddress | str,
    dst_port: int,
    *,
    handed_off_from: Listener | None = None,
) -> Listener | None:
    """`select_listener(...).listener`."""
    return select_listener(config, dst_ip, dst_port, handed_off_from=handed_off_from).listener


def select_handoff(
    config: EnvoyConfig, accepting_listener: Listener, original_dst: tuple[IPAddress | str, int]
) -> ListenerSelection:
    """Envoy's `use_original_dst` hand-off.

    After the listener filters ran (original_dst restored the destination
    that iptables rewrote), a listener with `use_original_dst` looks for an
    active listener whose address is the original destination: exact ip:port
    first, then 0.0.0.0:port ([::]:port for IPv6).  `bind_to_port: false`
    listeners are candidates.  If there is none, the connection stays on the
    accepting listener, which then selects one of its own filter chains.
    """
    ip = _ip(original_dst[0])
    port = original_dst[1]
    if not accepting_listener.use_original_dst:
        return ListenerSelection(
            None,
            (
                f"listener {accepting_listener.name} has no use_original_dst: no hand-off; the connection stays on it "
                f"and its filter chains match on the destination {_hp(ip, port)}",
            ),
        )
    candidates = [lst for lst in _socket_listeners(config) if lst.state == "active"]
    target, how = _find_by_address(candidates, ip, port)
    notes = _unusable_note(config, ip, port, candidates)
    if target is None:
        return ListenerSelection(
            None,
            (
                *notes,
                f"use_original_dst: no listener has the original destination {_hp(ip, port)} as its address; "
                f"the connection stays on {accepting_listener.name}",
            ),
        )
    return ListenerSelection(
        target,
        (
            *notes,
            f"use_original_dst: {accepting_listener.name} hands the connection off to {target.describe()} "
            f"({how} of the original destination {_hp(ip, port)})",
        ),
    )


def handoff(
    config: EnvoyConfig, accepting_listener: Listener, original_dst: tuple[IPAddress | str, int]
) -> Listener | None:
    """`select_handoff(...).listener`: the hand-off target, or None (stays on the accepting listener)."""
    return select_handoff(config, accepting_listener, original_dst).listener
