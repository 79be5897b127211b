"""deploy/rbac-namespaced.yaml: the same rights as deploy/rbac.yaml minus listing namespaces, granted by a Role and
RoleBinding in one namespace — nothing cluster-wide."""

from __future__ import annotations

from pathlib import Path

import yaml

from meshviz.collect.kube import CAPABILITY_CHECKS

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac-namespaced.yaml"


def test_namespaced_variant_grants_only_namespaced_rights() -> None:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    role = next(d for d in docs if d["kind"] == "Role")
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] != sa["namespace"]
    granted: set[tuple[str, str]] = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""] and "*" not in rule["verbs"] and "*" not in rule["resources"]
        granted |= {(verb, res) for verb in rule["verbs"] for res in rule["resources"]}
    needed = {(c.verb, c.resource + (f"/{c.subresource}" if c.subresource else "")) for c in CAPABILITY_CHECKS}
    assert granted == needed - {("list", "namespaces")}
    assert {g for g in granted if g[0] not in ("get", "list", "watch")} == {
        ("create", "pods/exec"),
        ("patch", "pods/ephemeralcontainers"),
    }
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
