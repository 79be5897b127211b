"""`python -m meshviz.engine generate`: the iptables or nftables rules for given settings, ready to apply."""

from __future__ import annotations

import json

import pytest

from meshviz.engine.cli import main

from .nft_golden_cases import CAPTURE_DIR, CNI_DIR


def test_nftables_flag_prints_istios_nft_script_then_the_routing_as_comments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["generate", "--set", "inbound_ports_include=*", "--set", "interception_mode=TPROXY", "--nftables"])
    out = capsys.readouterr().out
    assert status == 0
    golden = (CAPTURE_DIR / "inbound-ports-wildcard-tproxy.golden").read_text()
    assert out.startswith(golden)
    assert out[len(golden) :].startswith(
        "# ip rule add fwmark 1337 lookup 133\n# ip route add local default dev lo table 133\n"
    )


def test_native_nftables_in_istio_init_args_selects_nftables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--args", "-p 15001 -z 15006 -u 1337 -m REDIRECT --native-nftables"]) == 0
    assert capsys.readouterr().out.startswith((CAPTURE_DIR / "empty.golden").read_text())


def test_without_nftables_the_iptables_restore_payload_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--set", "inbound_ports_include=*"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# iptables\n* nat\n-N ISTIO_INBOUND\n")
    assert "add table" not in out


def test_json_output_carries_the_script_and_the_applied_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--nftables", "--flavour", "cni-plugin", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "nftables" and out["flavour"] == "cni-plugin"
    assert out["script"].startswith("add table inet istio-proxy-nat\n")
    assert out["settings"]["inbound_ports_exclude"] == [15020, 15021, 15090]


def test_ambient_prints_the_node_agents_in_pod_script(capsys: pytest.CaptureFixture[str]) -> None:
    v6 = "host_probe_snat_v6=e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164"
    assert main(["generate", "--ambient", "--nftables", "--set", "redirect_dns=true", "--set", v6]) == 0
    out = capsys.readouterr().out
    golden = (CNI_DIR / "default.golden").read_text()
    assert out == golden + "# ip rule add fwmark 0x111/0xfff pref 32764 lookup 100\n" + (
        "# ip route add local 0.0.0.0/0 dev lo table 100\n"
    )


def test_ambient_host_rule_uses_the_kubelet_uid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--ambient", "--nftables", "--host", "--kubelet-uid", "1000"]) == 0
    assert "skuid 1000 ip daddr @istio-inpod-probes-v4 counter snat to 169.254.7.127" in capsys.readouterr().out


def test_ambient_without_nftables_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--ambient"]) == 1
    assert "--nftables" in capsys.readouterr().err


def test_a_malformed_setting_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--nftables", "--set", "inbound_ports_include=eighty"]) == 2
    assert "inbound_ports_include" in capsys.readouterr().err


def test_legacy_layout_with_nftables_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--nftables", "--flavour", "legacy-1.23"]) == 2
    assert "flavour" in capsys.readouterr().err
