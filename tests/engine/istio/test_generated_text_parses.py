"""Whatever the knobs, every flavour's text reads back through the engine's parser without an error or warning."""

from __future__ import annotations

import random

import pytest

from meshviz.engine.istio import FLAVOURS, CaptureSettings, generate

CHOICES: dict[str, list[object]] = {
    "interception_mode": ["REDIRECT", "TPROXY"],
    "inbound_ports_include": ["", "*", "80,443"],
    "inbound_ports_exclude": ["", "15020,22"],
    "outbound_ports_include": ["", "9000"],
    "outbound_ports_exclude": ["", "15020"],
    "outbound_ip_ranges_include": ["", "*", "10.0.0.0/8,fd00::/8", "127.0.0.0/8"],
    "outbound_ip_ranges_exclude": ["", "10.1.0.0/16,fd00:1::/32"],
    "owner_groups_include": ["*", "java,202", ""],
    "owner_groups_exclude": ["", "888"],
    "exclude_interfaces": ["", "eth9"],
    "reroute_virtual_interfaces": ["", "eth1,eth2"],
    "redirect_dns": [False, True],
    "capture_all_dns": [False, True],
    "dns_servers_v4": ["", "10.96.0.10,10.96.0.11"],
    "dns_servers_v6": ["", "fd00::10"],
    "drop_invalid": [False, True],
    "enable_ipv6": [False, True],
    "trace_logging": [False, True],
    "proxy_uids": ["1337", "3,4"],
}


def _combinations(count: int, seed: int = 20240601) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [{name: rng.choice(values) for name, values in CHOICES.items()} for _ in range(count)]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_random_settings_generate_clean_text(flavour: str) -> None:
    for values in _combinations(150):
        capture = generate(CaptureSettings.from_values(**values), flavour)  # type: ignore[arg-type]
        assert not capture.errors and not capture.warnings, (values, [str(e) for e in capture.errors])
        assert [rs.family.value for rs in capture.rulesets] == (["ipv4", "ipv6"] if values["enable_ipv6"] else ["ipv4"])
