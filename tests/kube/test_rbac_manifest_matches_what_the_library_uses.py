"""deploy/rbac.yaml grants exactly the verbs and (sub)resources meshviz.collect asks for, nothing more."""

from __future__ import annotations

from pathlib import Path

import yaml

from meshviz.collect.kube import CAPABILITY_CHECKS

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"


def test_rbac_manifest_matches_what_the_library_uses() -> None:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= set(kinds)

    granted: set[tuple[str, str]] = set()
    for rule in kinds["ClusterRole"]["rules"]:
        assert rule["apiGroups"] == [""], rule  # core API only
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        granted |= {(verb, res) for verb in rule["verbs"] for res in rule["resources"]}

    needed = {(c.verb, c.resource + (f"/{c.subresource}" if c.subresource else "")) for c in CAPABILITY_CHECKS}
    # `get namespaces` is the only grant beyond the checks (harmless, lets kubectl-style tools describe them).
    assert granted - needed == {("get", "namespaces")}
    assert needed <= granted
    writes = {g for g in granted if g[0] not in ("get", "list", "watch")}
    assert writes == {("create", "pods/exec"), ("patch", "pods/ephemeralcontainers")}

    binding = kinds["ClusterRoleBinding"]
    sa = kinds["ServiceAccount"]["metadata"]
    assert binding["roleRef"]["name"] == kinds["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
