"""The capture container's script is valid sh: run here with stubbed tools (and the real /proc/sys when there
is no sysctl binary), its output splits into the parts the engine parses; a failing tool is bad_output."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshviz.collect.capture import capture_script
from meshviz.collect.capture_log import split_capture
from meshviz.collect.errors import CollectError
from meshviz.engine.routing.sysctl import parse_sysctls
from tests.kube.fake_apiserver import redirect_data, run_capture_command


def test_script_output_splits_into_every_part(tmp_path: Path) -> None:
    log, code = run_capture_command(["sh", "-c", capture_script()], redirect_data(), tmp_path)
    assert code == 0, log
    parts = split_capture(log)
    # every stubbed tool, nft included: `nft list ruleset` is a part too
    assert set(parts) == {"iptables-save", "ip-rule", "ip-route", "sysctl", "nft-ruleset"}
    assert "-A ISTIO_INBOUND" in parts["iptables-save"] and "Warning" not in parts["iptables-save"]


def test_sysctls_from_proc_when_the_image_has_no_sysctl(tmp_path: Path) -> None:
    script = capture_script().replace("command -v sysctl", "command -v no-such-sysctl-binary")
    log, code = run_capture_command(["sh", "-c", script], redirect_data(), tmp_path)
    assert code == 0, log
    text = split_capture(log)["sysctl"]
    parsed = parse_sysctls(text)
    assert not parsed.errors
    assert "net.ipv4.conf.lo.rp_filter = " in text and "net.ipv4.ip_forward = " in text


def test_failing_tool_is_bad_output(tmp_path: Path) -> None:
    script = capture_script().replace("ip route show table all", "ip route show table nonsense")
    log, _ = run_capture_command(["sh", "-c", script], redirect_data(), tmp_path)
    with pytest.raises(CollectError) as e:
        split_capture(log)
    assert (e.value.kind, e.value.step) == ("bad_output", "netfilter")
    assert "ip-route failed" in e.value.message and "exit status 255" in e.value.message


def test_cut_off_log_is_bad_output(tmp_path: Path) -> None:
    log, _ = run_capture_command(["sh", "-c", capture_script()], redirect_data(), tmp_path)
    with pytest.raises(CollectError, match="incomplete"):
        split_capture(log[: len(log) // 2])
