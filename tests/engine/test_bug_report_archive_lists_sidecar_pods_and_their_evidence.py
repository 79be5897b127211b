"""An `istioctl bug-report` archive laid out like Istio's tool writes it: its sidecar pods are listed with
namespace, mode and version; each picked pod's evidence is its config dump plus rules reconstructed from its
spec ("reconstructed, not captured"); a hostile or foreign archive is refused naming the member."""

from __future__ import annotations

import pytest

from meshviz.engine.evidence.archive import ArchiveError
from meshviz.engine.evidence.bugreport import pod_evidence, read_bug_report
from meshviz.engine.pipeline.evidence import Evidence, story_for

from .archives import member, tar_gz
from .bugreport_archive import GEO, PRODUCTPAGE, bug_report_archive


def test_lists_only_sidecar_pods_with_mode_and_version() -> None:
    report = read_bug_report(bug_report_archive(), source="bug-report.tar.gz")
    listed = [(p.namespace, p.name, p.mode, p.version, p.has_config_dump) for p in report.pods]
    assert listed == [
        ("default", PRODUCTPAGE, "REDIRECT", "1.4.0", True),
        ("hr2", GEO, "REDIRECT", "1.18.2", True),
        ("hr2-tproxy", GEO, "TPROXY", "1.18.2", True),
    ]
    assert report.dumps == {}  # listing reads no config dump


@pytest.mark.parametrize(
    ("ns", "name", "port", "peer"), [("hr2", GEO, 8083, "127.0.0.6"), ("hr2-tproxy", GEO, 8083, "10.1.1.1")]
)
def test_picked_pod_evidence_is_reconstructed_and_simulates(ns: str, name: str, port: int, peer: str) -> None:
    report = read_bug_report(bug_report_archive(), source="bug-report.tar.gz", pods=[(ns, name)])
    ev = pod_evidence(report, ns, name)
    assert ev.reconstructed
    assert ev.members["envoy"] == f"bug-report/proxies/{ns}/{name}/config_dump"
    assert ev.members["iptables"] == ""  # not from the archive: regenerated
    assert ev.notes[1].startswith("reconstructed, not captured: an istioctl bug-report archive holds no iptables")
    assert ev.identity.pod_ip == "172.16.188.31" and ev.identity.app_ports == (port,)
    story = story_for(
        Evidence(
            iptables=ev.evidence["iptables"],
            pod_ip=ev.identity.pod_ip,
            ip_rule=ev.evidence.get("ip_rule"),
            ip_route=ev.evidence.get("ip_route"),
            envoy=ev.evidence["envoy"],
            proxy_uid=ev.identity.proxy_uid,
            proxy_gid=ev.identity.proxy_gid,
            app_ports=ev.identity.app_ports,
        ),
        client="10.1.1.1:40000",
        port=port,
    )
    assert story.verdict.app_peer_ip == peer


def test_an_archive_without_cluster_resources_is_not_a_bug_report() -> None:
    with pytest.raises(ArchiveError) as raised:
        read_bug_report(tar_gz([member("bug-report/proxies/a/b/config_dump", b"{}")]), source="x.tar.gz")
    assert raised.value.member == "bug-report/cluster/k8s-resources" and "missing" in raised.value.problem


def test_yaml_aliases_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n"
    with pytest.raises(ArchiveError, match="aliases are refused") as raised:
        read_bug_report(bug_report_archive(resources=bomb), source="x.tar.gz")
    assert raised.value.member == "bug-report/cluster/k8s-resources"


def test_bad_yaml_names_line_and_column() -> None:
    with pytest.raises(ArchiveError, match="not valid YAML at line 3, column 3"):
        read_bug_report(bug_report_archive(resources="kind: List\nitems: [\n  - {"), source="x.tar.gz")


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (member("bug-report/../../etc/passwd", b"x"), "path traversal"),
        (member("bug-report/proxies/hr2/x/config_dump", kind=b"2", link="/etc/shadow"), "symbolic link"),
    ],
)
def test_hostile_members_are_refused(extra: object, problem: str) -> None:
    with pytest.raises(ArchiveError, match=problem):
        read_bug_report(bug_report_archive(extra=[extra]), source="x.tar.gz")


def test_unknown_picked_pod_is_named() -> None:
    with pytest.raises(ArchiveError, match="no such sidecar pod") as raised:
        read_bug_report(bug_report_archive(), source="x.tar.gz", pods=[("hr2", "redis-0")])
    assert raised.value.member == "hr2/redis-0"
