"""The story's verdicts on real Istio pods: data-driven scenarios (tests/fixtures/scenarios).

Every folder is one connection through a sidecar pod built from real inputs - Istio's own
iptables goldens, Envoy config dumps from the corpus (some derived by the folder's derive_*.py
script) and ip rule / ip route / sysctl listings - with the verdict Linux and Envoy really give
(kernel-verified where tests/kernel proves it; README.md in that folder gives every scenario's
justification).  `expect` must hold, all of it: the engine agrees with Linux and Envoy on every
scenario, and a disagreement is fixed in the engine, never parked as an expected failure.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .scenarios import (
    ARGS,
    INBOUND_VERDICT,
    OUTBOUND_VERDICT,
    SCENARIOS,
    Scenario,
    all_scenarios,
    findings_text,
    run,
)

REPO = SCENARIOS.parents[2]
ALL = all_scenarios()
IDS = [s.name for s in ALL]
DERIVE_SCRIPTS = sorted(SCENARIOS.glob("derive_*.py"))


def _story(s: Scenario) -> dict[str, Any]:
    result = run(s)
    assert result.errors == (), [str(e) for e in result.errors]
    assert result.story is not None
    return result.story.to_dict()


def _check(s: Scenario, story: dict[str, Any], expect: dict[str, Any], contain: list[str]) -> None:
    verdict = story["verdict"]
    text = findings_text(story["findings"])
    context = f"\n{s.name}: {story['summary']}\nverdict: {json.dumps(verdict)}\nfindings:\n{text}"
    wrong = {k: (verdict.get(k), v) for k, v in expect.items() if verdict.get(k) != v}
    assert not wrong, f"verdict fields (got, expected): {wrong}" + context
    missing = [m for m in contain if m not in text]
    assert not missing, f"findings do not mention {missing}" + context


def test_there_are_scenarios_for_both_directions() -> None:
    assert len(ALL) >= 16
    assert {s.direction for s in ALL} == {"inbound", "outbound"}


@pytest.mark.parametrize("scenario", ALL, ids=IDS)
def test_scenario_is_well_formed(scenario: Scenario) -> None:
    case = scenario.case
    assert set(case) >= {"description", "source", "args", "expect", "expect_findings_contain"}, scenario.name
    assert set(case) <= {
        "description",
        "source",
        "args",
        "expect",
        "expect_findings_contain",
        "copied_from",
    }
    assert case["description"].strip() and case["source"].strip()
    assert set(scenario.args) <= ARGS, set(scenario.args) - ARGS
    fields = INBOUND_VERDICT if scenario.direction == "inbound" else OUTBOUND_VERDICT
    assert set(case["expect"]) <= set(fields)
    assert scenario.file("iptables") is not None, "every scenario gives the pod's iptables rules"
    envoy = scenario.envoy_path()
    assert envoy is None or envoy.is_file(), envoy


@pytest.mark.parametrize("scenario", ALL, ids=IDS)
def test_scenario_verdict(scenario: Scenario) -> None:
    story = _story(scenario)
    fields = INBOUND_VERDICT if scenario.direction == "inbound" else OUTBOUND_VERDICT
    assert story["direction"] == scenario.direction
    assert tuple(story["verdict"]) == fields
    _check(scenario, story, scenario.case["expect"], scenario.case["expect_findings_contain"])


@pytest.mark.parametrize("scenario", [s for s in ALL if "copied_from" in s.case], ids=lambda s: s.name)
def test_copied_inputs_are_byte_for_byte_the_corpus_files(scenario: Scenario) -> None:
    for fname, rel in scenario.case["copied_from"].items():
        copy = scenario.path / fname
        original = (scenario.path / rel).resolve()
        assert original.is_relative_to(REPO / "tests" / "fixtures" / "corpus"), original
        assert copy.read_bytes() == original.read_bytes(), f"{copy} differs from {original}"


def _derive(script: Path) -> dict[Path, str]:
    spec = importlib.util.spec_from_file_location(f"scenario_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


@pytest.mark.parametrize("script", DERIVE_SCRIPTS, ids=lambda p: p.name)
def test_committed_derived_envoy_configs_equal_what_the_script_produces(script: Path) -> None:
    outputs = _derive(script)
    assert outputs
    for path, text in outputs.items():
        assert path.parent.parent == SCENARIOS and path.name == "envoy.json", path
        assert path.read_text() == text, f"{path} is stale: run python {script.relative_to(REPO)}"
        assert _derive(script)[path] == text, "the derivation is not deterministic"


def test_every_committed_envoy_json_comes_from_a_derive_script() -> None:
    produced = {p for script in DERIVE_SCRIPTS for p in _derive(script)}
    committed = set(SCENARIOS.glob("*/envoy.json"))
    assert committed == produced


def test_readme_describes_every_scenario() -> None:
    readme = (SCENARIOS / "README.md").read_text()
    for s in ALL:
        assert f"`{s.name}`" in readme, s.name
    for script in DERIVE_SCRIPTS:
        assert script.name in readme
    assert "Apache-2.0" in readme


# --------------------------------------------------------------------------
# The CLI's JSON contract, on two scenarios
# --------------------------------------------------------------------------

CLI_SCENARIOS = ["01-redirect-istio-1.18-app-sees-127.0.0.6", "10-outbound-app-to-external-via-passthrough"]


@pytest.mark.parametrize("name", CLI_SCENARIOS)
def test_cli_story_json_contract(name: str) -> None:
    scenario = next(s for s in ALL if s.name == name)
    proc = subprocess.run(
        [sys.executable, "-m", "meshviz.engine", *scenario.cli_args(), "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"verdict", "findings", "traces"} <= set(out)
    fields = INBOUND_VERDICT if scenario.direction == "inbound" else OUTBOUND_VERDICT
    assert set(out["verdict"]) == set(fields)
    for key, value in scenario.case["expect"].items():
        assert out["verdict"][key] == value, key
    assert out["findings"] and all(set(f) == {"kind", "text", "refs"} for f in out["findings"])
    assert {f["kind"] for f in out["findings"]} <= {"cause", "fact", "assumption", "warning"}
    text = findings_text(out["findings"])
    assert all(m in text for m in scenario.case["expect_findings_contain"])
    assert out["traces"] and all({"title", "node", "detail", "steps"} <= set(h) for h in out["traces"])
    # The kernel hops carry the packet traces: the client's (or application's) SYN comes first.
    assert "trace" in out["traces"][0]
    # The same story through the API gives the same verdict.
    assert out["verdict"] == _story(scenario)["verdict"]
