"""`istioctl proxy-config listener|cluster|route -o json` outputs (and `proxy-config all -o json`) are accepted as
the Envoy input: several are merged into one config dump, giving the same story as the full admin dump;
conflicting definitions and malformed inputs are errors naming the input, line and column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.envoy.proxyconfig import merge_envoy_inputs
from meshviz.engine.pipeline.evidence import Evidence, story_for
from tests.engine.envoy.proxy_config_outputs import proxy_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DUMP = (FIXTURES / "scenarios" / "01-redirect-istio-1.18-app-sees-127.0.0.6" / "envoy.json").read_text()
RULES = (FIXTURES / "corpus" / "istio-cni" / "plugin" / "basic.txt.golden").read_text()
POD_IP = "172.16.188.31"


def verdict(envoy: str) -> dict[str, Any]:
    ev = Evidence(iptables=RULES, pod_ip=POD_IP, envoy=envoy, proxy_uid=1337, proxy_gid=1337, app_ports=(8083,))
    return dict(story_for(ev, client="10.1.1.1:40000", port=8083).verdict.to_dict())


def test_listener_cluster_route_outputs_merge_to_the_dumps_story() -> None:
    pc = proxy_config(DUMP)
    inputs = [(f"{k}.json", json.dumps(v, indent=2)) for k, v in pc.items()]
    merged = merge_envoy_inputs(inputs)
    assert not merged.errors
    parsed = parse_config_dump(merged.text, source="merged")
    full = parse_config_dump(DUMP, source="dump")
    assert not parsed.errors
    assert {x.name for x in parsed.config.listeners} == {x.name for x in full.config.listeners}
    assert {c.name for c in parsed.config.clusters} >= {
        c.name for c in full.config.clusters if c.name.startswith("inbound|")
    }
    assert verdict(merged.text) == verdict(DUMP)
    assert verdict(merged.text)["app_peer_ip"] == "127.0.0.6"


def test_same_resource_twice_is_kept_once_and_different_definitions_are_an_error() -> None:
    pc = proxy_config(DUMP)
    listeners = json.dumps(pc["listener"])
    assert not merge_envoy_inputs([("a.json", listeners), ("b.json", listeners)]).errors
    changed = [
        {**x, "per_connection_buffer_limit_bytes": 1024} if x.get("name") == "virtualInbound" else x
        for x in pc["listener"]
    ]
    result = merge_envoy_inputs([("a.json", listeners), ("b.json", json.dumps(changed))])
    (err,) = result.errors
    assert err.source == "b.json" and "listener 'virtualInbound' differs from the one in a.json" in err.message


def test_all_output_as_several_documents_and_a_full_dump_plus_lists() -> None:
    pc = proxy_config(DUMP)
    several = "\n".join(json.dumps(v) for v in pc.values())  # documents one after another
    merged = merge_envoy_inputs([("all.json", several), ("routes.json", json.dumps(pc["route"]))])
    assert not merged.errors and verdict(merged.text) == verdict(DUMP)


def test_malformed_input_names_file_line_and_column() -> None:
    result = merge_envoy_inputs([("ok.json", "[]"), ("bad.json", '[\n  {"name": "x",\n   oops}\n]')])
    (err,) = result.errors
    assert (err.source, err.line) == ("bad.json", 3) and "invalid JSON" in err.message


def test_two_full_dumps_are_refused() -> None:
    result = merge_envoy_inputs([("a.json", DUMP), ("b.json", DUMP)])
    assert result.errors and "a second full config dump" in result.errors[0].message


@pytest.mark.parametrize("split", ["listener+cluster+route", "full dump"])
def test_cli_story_takes_repeated_envoy_inputs(tmp_path: Path, split: str) -> None:
    (tmp_path / "rules").write_text(RULES)
    if split == "full dump":
        envoy_args = ["--envoy", str(tmp_path / "dump.json")]
        (tmp_path / "dump.json").write_text(DUMP)
    else:
        envoy_args = []
        for kind, items in proxy_config(DUMP).items():
            (tmp_path / f"{kind}.json").write_text(json.dumps(items))
            envoy_args += ["--envoy", str(tmp_path / f"{kind}.json")]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshviz.engine",
            "story",
            "--iptables",
            str(tmp_path / "rules"),
            *envoy_args,
            "--pod-ip",
            POD_IP,
            "--proxy-uid",
            "1337",
            "--proxy-gid",
            "1337",
            "--client",
            "10.1.1.1:40000",
            "--port",
            "8083",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verdict"]["app_peer_ip"] == "127.0.0.6"
