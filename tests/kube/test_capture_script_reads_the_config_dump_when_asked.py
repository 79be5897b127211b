"""capture_script(config_dump=True) reads Envoy's dump from 127.0.0.1:15000 with whatever the image has
(pilot-agent, else curl, else wget), keeps the tool's stderr out of the dump, and says why when it cannot;
the netfilter parts still split as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshviz.collect.capture import capture_script
from meshviz.collect.capture_log import split_capture, split_config_dump
from tests.kube.fake_apiserver import MINIMAL_TOOLS, NETSHOOT_TOOLS, PROXYV2_TOOLS, redirect_data, run_capture_command


@pytest.mark.parametrize(
    ("tools", "tool"),
    [(PROXYV2_TOOLS, "pilot-agent"), (NETSHOOT_TOOLS, "curl"), (NETSHOOT_TOOLS - {"curl"}, "wget")],
)
def test_dump_read_with_the_tool_the_image_has(tmp_path: Path, tools: frozenset[str], tool: str) -> None:
    data = redirect_data()
    log, code = run_capture_command(["sh", "-c", capture_script(config_dump=True)], data, tmp_path, tools)
    assert code == 0, log[-500:]
    dump, used, why = split_config_dump(log)
    assert (used, why) == (tool, "")
    assert dump is not None and json.loads(dump) == json.loads(data.config_dump)
    # `nft list ruleset` is a part of its own where the image has nft (netshoot)
    nft = {"nft-ruleset"} if "nft" in tools else set()
    assert set(split_capture(log)) == {"iptables-save", "ip-rule", "ip-route", "sysctl", *nft}
    assert log.index("### meshviz:config_dump\n") < log.index("### meshviz:iptables-save\n")


def test_no_client_in_the_image_says_so(tmp_path: Path) -> None:
    log, _ = run_capture_command(
        ["sh", "-c", capture_script(config_dump=True)], redirect_data(), tmp_path, MINIMAL_TOOLS
    )
    dump, used, why = split_config_dump(log)
    assert dump is None and used == "none"
    assert "exit status 127" in why and "no pilot-agent, curl or wget" in why
    assert split_capture(log)["iptables-save"]  # the rules were still captured


def test_failed_client_is_reported_with_its_stderr(tmp_path: Path) -> None:
    # Envoy's admin listener is bound to 127.0.0.1: a script asking ::1 only would be refused
    script = capture_script(config_dump=True).replace("http://127.0.0.1:15000", "http://[::1]:15000")
    log, _ = run_capture_command(["sh", "-c", script], redirect_data(), tmp_path, NETSHOOT_TOOLS)
    dump, used, why = split_config_dump(log)
    assert dump is None and used == "curl"
    assert "curl failed (exit status 7)" in why and "Connection refused" in why


def test_ipv6_pod_falls_back_to_the_ipv6_loopback_only_after_127_0_0_1(tmp_path: Path) -> None:
    script = capture_script(ipv6=True, config_dump=True)
    assert script.index("http://127.0.0.1:15000/config_dump") < script.index("http://[::1]:15000/config_dump")
    data = redirect_data()
    data.ip6tables_legacy = data.iptables_legacy
    log, code = run_capture_command(["sh", "-c", script], data, tmp_path, NETSHOOT_TOOLS)
    assert code == 0
    assert split_config_dump(log)[1:] == ("curl", "")
