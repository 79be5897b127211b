"""Issue 15: on a pod with thousands of rules the rule table is filtered and paged on the server, the analysis page
lists only the chains a connection hit, what-if answers carry the change and the verdicts (not the edited evidence),
and the evidence is parsed once per analysis for every page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from meshviz.analyses import examples, services
from meshviz.analyses.models import Analysis
from meshviz.web import parsed
from meshviz.web.explorer_rules import MAX_PER_PAGE, PER_PAGE
from meshviz.web.pages import SUMMARISE_OVER_RULES
from tests.web.explorer_support import TPROXY_OK, client_for, explorer_user

pytestmark = pytest.mark.django_db

SERVICES = 1200  # 2 rules each in nat KUBE-SERVICES / KUBE-SVC-*: 2,400 kube-proxy rules + Istio's


def kube_proxy_nat(services_: int) -> tuple[list[str], list[str]]:
    """(chain declarations, rules) shaped like kube-proxy's nat table for `services_` ClusterIP services."""
    decls = [":KUBE-SERVICES - [0:0]"]
    rules = ["-A OUTPUT -j KUBE-SERVICES"]
    for s in range(services_):
        svc = f"KUBE-SVC-{s:016X}"
        decls.append(f":{svc} - [0:0]")
        vip = f"172.20.{s // 250}.{s % 250 + 1}"
        rules.append(f'-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment "ns/svc{s}:http" --dport 80 -j {svc}')
        rules.append(f"-A {svc} -p tcp -j DNAT --to-destination 10.0.{s // 250}.{s % 250 + 1}:8080")
    return decls, rules


def big_analysis(user: User) -> Analysis:
    example = examples.get(TPROXY_OK)
    assert example is not None
    fields = example.analysis_fields()
    decls, rules = kube_proxy_nat(SERVICES)
    # Istio's nat table (REDIRECT of outbound) with kube-proxy's chains after it in the same table
    text = fields["iptables"].replace("* nat\n", "* nat\n" + "\n".join(decls) + "\n", 1)
    text = text[: text.rindex("COMMIT")] + "\n".join(rules) + "\nCOMMIT\n"
    fields["iptables"] = text
    errors, warnings = services.validate_evidence(pod_ip=example.pod_ip, **{n: fields[n] for n in examples.FILES})
    assert not errors, errors[:3]
    analysis = services.create_analysis(**fields, warnings=warnings, owner=user)
    analysis = services.run_analysis(analysis)
    assert analysis.state == Analysis.State.DONE
    return analysis


@pytest.fixture
def setup() -> tuple[Analysis, object]:
    parsed.clear()
    user = explorer_user()
    return big_analysis(user), client_for(user)


def test_rule_table_is_filtered_and_paged_on_the_server(setup: tuple[Analysis, object]) -> None:
    analysis, client = setup
    url = f"/a/{analysis.slug}/rules/"
    first = client.get(url, {"format": "json"}).json()  # type: ignore[attr-defined]
    assert first["total"] > 2 * SERVICES and first["matched"] == first["total"]
    assert first["page"] == 1 and first["per_page"] == PER_PAGE and len(first["rules"]) == PER_PAGE
    assert first["pages"] == -(-first["total"] // PER_PAGE)

    second = client.get(url, {"format": "json", "page": 2}).json()  # type: ignore[attr-defined]
    keys = {(r["table"], r["chain"], r["index"]) for r in first["rules"]}
    assert len(second["rules"]) == PER_PAGE and not keys & {
        (r["table"], r["chain"], r["index"]) for r in second["rules"]
    }

    # the text filter runs over every rule before paging: page 3 of the KUBE-SVC jumps
    q = client.get(url, {"format": "json", "q": "ns/svc", "per_page": 50, "page": 3}).json()  # type: ignore[attr-defined]
    assert q["matched"] == SERVICES and q["pages"] == SERVICES // 50
    assert [r["index"] for r in q["rules"]] == list(range(101, 151))
    assert all("ns/svc" in r["text"] for r in q["rules"])

    # the last page is short; past the end is the last page
    last = client.get(url, {"format": "json", "q": "ns/svc", "per_page": 500, "page": 99}).json()  # type: ignore[attr-defined]
    assert last["page"] == 3 and len(last["rules"]) == SERVICES - 1000

    big = client.get(url, {"format": "json", "per_page": 10**6}).json()  # type: ignore[attr-defined]
    assert big["per_page"] == MAX_PER_PAGE

    page = client.get(url, {"q": "ns/svc"})  # type: ignore[attr-defined]
    html = page.content.decode()
    assert page.status_code == 200 and html.count('class="rule-row') == PER_PAGE
    assert f"1&ndash;{PER_PAGE} of {SERVICES} matching" in html and "page=2" in html and 'rel="next"' in html
    # thousands of chains: the chain drop-down keeps to the chains a connection hit
    assert "<option >KUBE-SVC-" not in html and "<option >ISTIO_INBOUND</option>" in html


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_page_numbers_are_400_naming_the_parameter(setup: tuple[Analysis, object], bad: str) -> None:
    analysis, client = setup
    for name in ("page", "per_page"):
        response = client.get(f"/a/{analysis.slug}/rules/", {"format": "json", name: bad})  # type: ignore[attr-defined]
        assert response.status_code == 400
        assert response.json()["errors"][0]["source"] == name


def test_deep_link_opens_the_page_its_rule_is_on(setup: tuple[Analysis, object]) -> None:
    analysis, client = setup
    chain = f"KUBE-SVC-{SERVICES - 1:016X}"
    response = client.get(f"/a/{analysis.slug}/rules/nat/{chain}/1")  # type: ignore[attr-defined]
    html = response.content.decode()
    assert response.status_code == 200 and 'aria-current="true"' in html and chain in html


def test_analysis_page_lists_only_the_chains_a_connection_hit(setup: tuple[Analysis, object]) -> None:
    analysis, client = setup
    assert sum(1 for line in analysis.iptables.splitlines() if line.startswith("-A")) > SUMMARISE_OVER_RULES
    html = client.get(f"/a/{analysis.slug}/").content.decode()  # type: ignore[attr-defined]
    assert "KUBE-SVC-" not in html.split('id="rules"', 1)[1]  # no chain nobody hit
    assert "ISTIO_INBOUND" in html  # the chains the inbound connection went through
    assert "not listed here" in html and f"/a/{analysis.slug}/rules/?table=nat" in html
    assert len(html) < 300_000


def test_what_if_answers_with_the_change_and_the_verdicts_not_the_evidence(setup: tuple[Analysis, object]) -> None:
    analysis, client = setup
    edits = [{"op": "delete", "family": "ipv4", "table": "mangle", "chain": "ISTIO_TPROXY", "index": 1}]
    response = client.get(f"/a/{analysis.slug}/whatif/", {"format": "json", "edits": json.dumps(edits)})  # type: ignore[attr-defined]
    assert response.status_code == 200
    data = response.json()
    assert "evidence" not in data and "stories" not in data
    assert len(data["verdicts"]) == len(analysis.connections) and all(v["verdict"] for v in data["verdicts"])
    assert data["diff"] and "-A ISTIO_TPROXY" in data["patch"]
    assert len(response.content) < len(analysis.iptables) / 4


def test_every_page_of_an_analysis_shares_one_parse(setup: tuple[Analysis, object]) -> None:
    analysis, client = setup
    slug = analysis.slug
    urls = [
        f"/a/{slug}/",
        f"/a/{slug}/rules/",
        f"/a/{slug}/rules/?q=ns/svc&page=2",
        f"/a/{slug}/rules/mangle/ISTIO_INBOUND/1",
        f"/api/v1/analyses/{slug}/rules/",
        f"/a/{slug}/compose/?format=json",
        f"/a/{slug}/rules/?family=ipv4&target=DNAT",
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url  # type: ignore[attr-defined]
    stats = parsed.stats()
    # the upload's validation parsed the rules; no page parsed them again, and the rows were built once
    assert stats["iptables"][1] == 1, stats
    assert stats["rows"][1] == 1, stats
    assert stats["pod"][1] <= 1, stats


def test_structure_graph_that_would_be_refused_is_never_built(setup: tuple[Analysis, object], monkeypatch: Any) -> None:
    from meshviz.engine.explorer import structure
    from meshviz.web import explorer

    analysis, client = setup

    def not_built(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("structure_dot was called")

    monkeypatch.setattr(structure, "structure_dot", not_built)
    monkeypatch.setattr(explorer, "MIN_DOT_BYTES_PER_RULE", 1000)  # 2,400+ rules: surely over 1 MB of DOT
    for url in (f"/a/{analysis.slug}/structure/", f"/a/{analysis.slug}/compose/"):
        response = client.get(url)  # type: ignore[attr-defined]
        assert response.status_code == 200
        assert (
            "too many to draw as one graph" in response.content.decode() and "rule table" in response.content.decode()
        )


def test_structure_overview_lists_the_hit_user_chains_and_counts_the_others(setup: tuple[Analysis, object]) -> None:
    import re

    from meshviz.web.explorer import MAX_OVERVIEW_USER_CHAINS

    analysis, client = setup
    html = client.get(f"/a/{analysis.slug}/structure/").content.decode()  # type: ignore[attr-defined]
    listed = html[html.index("User-defined chains:") :]
    listed = listed[: listed.index("</p>")]
    links = re.findall(r'\?table=(\w+)&amp;chain=([\w-]+)"', listed)
    assert len(links) == MAX_OVERVIEW_USER_CHAINS
    more = re.search(r"and (\d+) more, in <a href=\"/a/[^\"]+/rules/\">the rule table</a>", listed)
    assert more is not None and len(links) + int(more.group(1)) > SERVICES  # every KUBE-SVC chain is counted
    # the chains the connections went through come first
    assert ("mangle", "ISTIO_INBOUND") in links[:5] and ("mangle", "ISTIO_TPROXY") in links[:5]
