"""Beyond the models: the generated text is byte for byte what Istio's dry-run tests recorded."""

from __future__ import annotations

import pytest

from meshviz.engine.core.model import Family
from meshviz.engine.istio import CaptureSettings, generate

from .golden_cases import GOLDEN_CASES, GoldenCase


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: c.id)
def test_transcript_is_the_golden_byte_for_byte(case: GoldenCase) -> None:
    capture = generate(CaptureSettings.from_values(**case.settings), case.flavour)
    assert capture.transcript() == case.golden.read_text()


def test_restore_text_is_the_iptables_restore_payload_per_family() -> None:
    capture = generate(CaptureSettings.from_values(enable_ipv6=True, inbound_ports_include="*"))
    v4, v6 = capture.restore_text[Family.IPV4], capture.restore_text[Family.IPV6]
    assert v4.startswith("* nat\n-N ISTIO_INBOUND\n") and v4.endswith("COMMIT\n")
    assert "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN" in v4
    assert "-A ISTIO_OUTPUT -d ::1/128 -j RETURN" in v6
    assert capture.text(Family.IPV4) == v4


def test_legacy_commands_are_one_iptables_command_per_rule() -> None:
    capture = generate(CaptureSettings.from_values(enable_ipv6=True), "legacy-1.23")
    v4, v6 = capture.commands[Family.IPV4], capture.commands[Family.IPV6]
    assert v4[0] == "iptables -t nat -N ISTIO_INBOUND"
    assert "iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT" in v4
    assert all(line.startswith("ip6tables -t ") for line in v6)
    assert capture.text(Family.IPV6) == "".join(line + "\n" for line in v6)
