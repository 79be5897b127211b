"""What the pod profile (meshviz.engine.evidence.profile) reads from native nftables rules: the interception mode,
Envoy's capture ports, the TPROXY mark and the owner exemptions, in Istio's nft tables (`inet
istio-proxy-nat`, `istio-proxy-mangle`, `istio-proxy-raw`; ambient: `istio-ambient-*`) or any other table
that writes the same statements."""

from __future__ import annotations

from collections.abc import Iterator

from meshviz.engine.nftables.model import Match, Nat, NftRule, NftRuleset, Selector, SetStmt, Tproxy, Value, Verdict


def _rules(rs: NftRuleset | None, *, spelled: tuple[str, ...] = (), chains: tuple[str, ...] = ()) -> Iterator[NftRule]:
    """The rules, in order; only those of chains whose text may hold a statement `spelled` with one of the words
    (`tproxy`, `redirect`: a listing's chain not read yet is searched as text, not built), or of the `chains`
    named.  On a node-sized ruleset this leaves kube-proxy's thousands of chains unbuilt."""
    for t in rs.tables if rs is not None else ():
        for c in t.chains:
            if chains and c.name not in chains:
                continue
            if spelled and not c.may_contain(*spelled):
                continue
            yield from c.rules


def _has(rule: NftRule, kind: type) -> list[object]:
    return [s for s in rule.statements if isinstance(s, kind)]


def interception_mode(rs: NftRuleset | None) -> str:
    """TPROXY when a `tproxy` statement exists, REDIRECT when a `redirect` one does, otherwise NONE."""
    mode = "NONE"
    for r in _rules(rs, spelled=("tproxy", "redirect")):
        if _has(r, Tproxy):
            return "TPROXY"
        if any(isinstance(s, Nat) and s.kind == "redirect" for s in r.statements):
            mode = "REDIRECT"
    return mode


def _redirect_port(rs: NftRuleset | None, chains: tuple[str, ...]) -> int | None:
    for r in _rules(rs, chains=chains):
        if r.chain in chains:
            for s in r.statements:
                if isinstance(s, Nat) and s.kind == "redirect" and s.port:
                    return s.port
    return None


def capture_port(rs: NftRuleset | None, mode: str) -> int | None:
    """Envoy's inbound capture port: tproxy's port, or the redirect in Istio's `istio-in-redirect` chain."""
    if mode == "TPROXY":
        for r in _rules(rs, spelled=("tproxy",)):
            for s in r.statements:
                if isinstance(s, Tproxy) and s.port:
                    return s.port
        return None
    return _redirect_port(rs, ("istio-in-redirect",)) if mode == "REDIRECT" else None


def outbound_port(rs: NftRuleset | None) -> int | None:
    return _redirect_port(rs, ("istio-redirect",))


def _int(v: object) -> int | None:
    if isinstance(v, Value):
        try:
            return int(v.text_, 0)
        except ValueError:
            return None
    return None


def tproxy_mark(rs: NftRuleset | None) -> tuple[int, int, str] | None:
    """The mark a `tproxy` rule sets (`tproxy ip to :15006 meta mark set MARK accept`), else what Istio's
    `istio-divert` chain sets."""
    for want_tproxy in (True, False):
        for r in _rules(rs, spelled=("tproxy",)) if want_tproxy else _rules(rs, chains=("istio-divert",)):
            if want_tproxy != bool(_has(r, Tproxy)) or (not want_tproxy and r.chain != "istio-divert"):
                continue
            for s in r.statements:
                if isinstance(s, SetStmt) and s.target == Selector("meta mark") and (m := _int(s.value)) is not None:
                    return m, 0xFFFFFFFF, f"{r.family} {r.table}/{r.chain}: {r.text()}"
    return None


def exempt_ids(rs: NftRuleset | None, key: str) -> list[int]:
    """uids (`key` "meta skuid") or gids ("meta skgid") whose connections a NAT output chain returns from
    without an interface condition: Istio's way of letting the sidecar's own traffic out."""
    ids: list[int] = []
    for r in _rules(rs, chains=("istio-output", "output")):
        if r.chain not in ("istio-output", "output") or not any(
            isinstance(s, Verdict) and s.kind == "return" for s in r.statements
        ):
            continue
        matches = [s for s in r.statements if isinstance(s, Match)]
        if any(m.left in (Selector("meta oifname"), Selector("meta oif")) for m in matches):
            continue
        for m in matches:
            if m.left == Selector(key) and m.op == "==" and (n := _int(m.right)) is not None:
                ids.append(n)
    return list(dict.fromkeys(ids))


def restores_ct_mark(rs: NftRuleset | None) -> bool:
    """A rule copies the connection's mark to the packet (`meta mark set ct mark`: CONNMARK --restore-mark)."""
    return any(
        isinstance(s, SetStmt) and s.target == Selector("meta mark") and s.value == Selector("ct mark")
        for r in _rules(rs, spelled=("ct mark",))
        for s in r.statements
    )


def is_istio(rs: NftRuleset | None) -> str | None:
    """ "sidecar" for Istio's sidecar tables, "ambient" for its ambient ones, None otherwise."""
    names = {t.name for t in rs.tables} if rs is not None else set()
    if any(n.startswith("istio-ambient") for n in names):
        return "ambient"
    if any(n.startswith("istio-proxy") for n in names):
        return "sidecar"
    return None
