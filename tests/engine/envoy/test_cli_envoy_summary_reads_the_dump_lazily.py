"""`parse --kind envoy --format summary` prints the lazy index: the eager parse's counts, the secrets redacted and
never shown; problems inside a listener are left to `--format json`, invalid JSON is an error at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshviz.engine.cli import main
from meshviz.engine.envoy import parse_config_dump
from tests.engine.envoy.test_redaction import SECRETS, assert_clean, planted_dump

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


def summary_lines(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, str], str]:
    status = main(["parse", *args, "--kind", "envoy", "--format", "summary"])
    out = capsys.readouterr()
    # "key: value" lines (a failed listener's details may run on over more lines)
    lines = {k: v for k, sep, v in (line.partition(": ") for line in out.out.splitlines()) if sep}
    return status, lines, out.out + out.err


def test_the_summary_counts_what_the_eager_parse_builds(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "istio-1.18-sidecar-geo-virtualInbound-error-state.json"
    status, lines, _ = summary_lines(capsys, str(path))
    eager = parse_config_dump(path.read_text(), str(path)).config
    assert status == 0
    assert lines["node"] == eager.node_id and lines["interception_mode"] == eager.interception_mode
    assert (int(lines["listeners"]), int(lines["clusters"])) == (len(eager.listeners), len(eager.clusters))
    assert lines["warnings"].startswith("not checked")
    assert lines["listener virtualInbound"].startswith("error: Proto constraint validation failed")


def test_the_summary_reports_secrets_redacted_and_shows_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "planted.json"
    path.write_text(json.dumps(planted_dump(), indent=1))
    status, lines, everything = summary_lines(capsys, str(path))
    assert status == 0 and lines["redacted"] == "14 secret value(s)"
    assert_clean(everything)
    assert SECRETS["b64"] not in everything


def test_a_bad_listener_waits_for_json_but_invalid_json_does_not(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dump = json.loads((FIXTURES / "istio-1.4-sidecar-productpage.json").read_text())
    for cfg in dump["configs"]:
        if "dynamic_listeners" in cfg:
            cfg["dynamic_listeners"][0]["active_state"]["listener"]["address"]["socket_address"]["port_value"] = "x"
    bad = tmp_path / "bad-listener.json"
    bad.write_text(json.dumps(dump, indent=1))
    assert summary_lines(capsys, str(bad))[0] == 0
    assert main(["parse", str(bad), "--kind", "envoy", "--format", "json"]) == 2
    assert "port_value" in capsys.readouterr().err
    cut = tmp_path / "cut.json"
    cut.write_text(bad.read_text()[:3000])
    status, _, everything = summary_lines(capsys, str(cut))
    assert status == 2 and f"{cut}:101:" in everything and "not valid JSON" in everything
