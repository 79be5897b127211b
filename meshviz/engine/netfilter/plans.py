"""The shape memo of the iptables parser: each distinct shape of rule line is parsed once (see below), and the
table, option and protocol checks of a match or target.  `parser` builds rules from these plans; `fastparse` turns
a plan into one compiled regular expression per shape.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

from meshviz.engine.core.model import Family
from meshviz.engine.netfilter.cmdline import VALUE, CommandLine, ExtBuilder, FamItem
from meshviz.engine.netfilter.model import Match, MatchOption, Target
from meshviz.engine.netfilter.spec import STANDARD_TARGETS, ExtensionSpec, OptionSpec
from meshviz.engine.netfilter.values import check_value

_NO_IN_IFACE = {"OUTPUT", "POSTROUTING"}
_NO_OUT_IFACE = {"INPUT", "PREROUTING"}
_PORT_TARGETS = {"REDIRECT", "MASQUERADE", "DNAT", "SNAT"}
_VALUE_CHECKED = _PORT_TARGETS | {"REJECT"}
_PORT_PROTOS = ("tcp", "udp", "sctp", "dccp")
_NAT_DROP = 'The "nat" table is not intended for filtering, the use of DROP is therefore inhibited.'

# --------------------------------------------------------------------------
# Shape memo: parse each distinct shape of rule line once
# --------------------------------------------------------------------------
# Large rulesets (kube-proxy: ~80k rules) repeat a handful of line shapes that
# differ only in values: chain names, addresses, comments, probabilities.  The
# first line of a shape goes through the full getopt parser; if it parsed
# cleanly, a _Plan records which token is what.  Later lines of the same
# shape are built straight from the plan.  Two lines have the same shape when
# they are in the same table, have the same number of tokens and the same `!`
# positions, and agree on the tokens at even positions once the `!`s are set
# aside (that is where the options are in `-A C -x v -y v ...`); running a
# plan then checks that every other token the plan treats as structure
# (option names, module, protocol and target names) is also identical.  What
# getopt does with a value token does not depend on its content - it is taken
# as the value whatever it looks like, except for a lone `!`, and `!`
# positions are part of the shape - so the parse is the same.  Anything
# unusual - a value that fails validation, an unknown chain, a warning - sends
# the line back to the full parser, which reports it exactly as usual.


class _NoPlanYet:
    pass


_NO_PLAN_YET = _NoPlanYet()

_Built = tuple["Match | Target", "tuple[FamItem, ...]"]


class _ExtPlan:
    """How to build one match or extension target from a line's tokens."""

    __slots__ = ("cache", "checks", "ext", "getter", "goto", "implicit", "module", "opts", "static", "tok")

    def __init__(
        self,
        ext: ExtensionSpec,
        module: str,
        implicit: bool,
        goto: bool,
        opts: tuple[tuple[OptionSpec, bool, tuple[int, ...]], ...],
        tok: int,
    ):
        self.ext = ext
        self.module = module
        self.implicit = implicit
        self.goto = goto
        self.opts = opts  # (option spec, negated, value token indices)
        idxs = [k for _, _, vi in opts for k in vi]
        self.getter: Callable[[list[str]], object] | None = itemgetter(*idxs) if idxs else None
        self.static: _Built | None = None
        self.cache: dict[object, _Built | None] = {}
        self.tok = tok  # token index errors and hook checks point at
        # (table, protocol, ports given) -> hook restrictions, or None if the full parser must look
        self.checks: dict[tuple[str, str | None, bool], tuple[tuple[str, frozenset[str]], ...] | None] = {}

    def build(self, toks: list[str]) -> _Built | None:
        """The object for this line's values; None if a value is invalid (the full parser reports it)."""
        if self.getter is None:
            if self.static is None:
                self.static = self._make(toks)
            return self.static
        key = self.getter(toks)
        built = self.cache.get(key, _NO_PLAN_YET)
        if built is _NO_PLAN_YET:
            built = self.cache[key] = self._make(toks)
        return built  # type: ignore[return-value]

    def _make(self, toks: list[str]) -> _Built | None:
        options: list[MatchOption] = []
        fams: list[FamItem] = []
        for opt, neg, vi in self.opts:
            values = (toks[vi[0]],) if len(vi) == 1 else tuple([toks[k] for k in vi])
            kind = opt.kind
            if kind != "any" and kind != "none" and kind != "string":
                for k, v in zip(vi, values, strict=True):
                    err, fam = check_value(kind, v)
                    if err is not None:
                        return None
                    if fam is not None:
                        fams.append((fam, k, VALUE))
            options.append(MatchOption(opt.name, values, neg))
        obj: Match | Target
        if self.ext.kind == "target":
            obj = Target(self.module, tuple(options), self.goto)
        else:
            obj = Match(self.module, tuple(options), self.implicit)
        return obj, tuple(fams)

    def hooks(
        self, obj: Match | Target, table: str, proto: str | None
    ) -> tuple[tuple[str, frozenset[str]], ...] | None:
        ext = self.ext
        ports = ext.name in _VALUE_CHECKED and _value_flag(ext.name, obj.options)
        key = (table, proto, ports)
        checks = self.checks
        if key in checks:
            return checks[key]
        err, hooks, warning = _check_ext(ext, obj.options, table, proto)
        res = checks[key] = None if err is not None or warning is not None else hooks
        return res


class _Plan:
    __slots__ = (
        "dst",
        "dst_neg",
        "frag",
        "goto",
        "iin",
        "iin_neg",
        "iout",
        "iout_neg",
        "jump",
        "matches",
        "proto",
        "proto_neg",
        "simple_matches",
        "src",
        "src_neg",
        "static_fams",
        "static_target",
        "target",
        "verify",
    )

    def __init__(self) -> None:
        self.verify: tuple[tuple[int, str], ...] = ()
        self.src = self.dst = self.iin = self.iout = self.jump = -1
        self.src_neg = self.dst_neg = self.iin_neg = self.iout_neg = self.proto_neg = self.goto = False
        self.proto: str | None = None
        self.frag: bool | None = None
        self.matches: tuple[_ExtPlan, ...] = ()
        self.simple_matches = True
        self.target: _ExtPlan | None = None
        self.static_target: Target | None = None
        self.static_fams: tuple[FamItem, ...] = ()


def _shape_key(table: str, hint: Family | None, toks: list[str]) -> tuple[object, ...]:
    if "!" not in toks:
        return (table, hint, len(toks), *toks[::2])
    if toks.count("!") == 1:
        b = toks.index("!")
        rest = toks[:b] + toks[b + 1 :]
        return (table, hint, len(toks), b, *rest[::2])
    bangs = tuple([k for k, t in enumerate(toks) if t == "!"])
    rest = [t for t in toks if t != "!"]
    return (table, hint, len(toks), bangs, *rest[::2])


def _make_plan(toks: list[str], sp: CommandLine) -> _Plan | None:
    """A plan from a cleanly parsed `-A` line, or None if its shape cannot be planned."""
    if sp.command != "A" or sp.counters is not None or sp.warnings or sp.cmd_tok != 0:
        return None
    p = _Plan()
    values: set[int] = {sp.chain_tok}
    if sp.src is not None:
        values.add(sp.src_tok)
        p.src, p.src_neg = sp.src_tok, sp.src_neg
    if sp.dst is not None:
        values.add(sp.dst_tok)
        p.dst, p.dst_neg = sp.dst_tok, sp.dst_neg
    if sp.iin is not None:
        values.add(sp.iin_tok)
        p.iin, p.iin_neg = sp.iin_tok, sp.iin.negated
    if sp.iout is not None:
        values.add(sp.iout_tok)
        p.iout, p.iout_neg = sp.iout_tok, sp.iout.negated
    p.proto, p.proto_neg, p.frag = sp.proto, sp.proto_neg, sp.frag

    def ext_plan(mb: ExtBuilder, goto: bool) -> _ExtPlan | None:
        ext = mb.spec
        if ext is None:
            return None
        opts: list[tuple[OptionSpec, bool, tuple[int, ...]]] = []
        for mo, (start, count) in zip(mb.options, mb.slots, strict=True):
            os_ = ext.option(mo.name)
            if start < 0 or count > 1 or os_ is None or os_.nargs not in (0, 1):
                return None
            vi = tuple(range(start, start + count))
            values.update(vi)
            opts.append((os_, mo.negated, vi))
        return _ExtPlan(ext, mb.module, mb.implicit, goto, tuple(opts), mb.tok)

    mplans: list[_ExtPlan] = []
    for mb in sp.matches:
        mp = ext_plan(mb, False)
        if mp is None:
            return None
        mplans.append(mp)
    p.matches = tuple(mplans)
    p.simple_matches = all(mp.ext.simple for mp in mplans)
    tb = sp.target
    if tb is not None:
        p.goto = sp.goto
        if tb.spec is not None:
            p.target = ext_plan(tb, sp.goto)
            if p.target is None:
                return None
        elif tb.module in STANDARD_TARGETS:
            p.static_target = Target(tb.module, (), sp.goto)
        else:
            values.add(sp.target_tok)
            p.jump = sp.target_tok
    # without a `!` the tokens at even positions are part of the shape key; otherwise check them all
    start, step = (1, 2) if "!" not in toks else (0, 1)
    p.verify = tuple([(k, toks[k]) for k in range(start, len(toks), step) if k not in values and toks[k] != "!"])
    p.static_fams = tuple([f for f in sp.fam_items if f[1] not in values])
    return p


_CheckResult = tuple["str | None", "tuple[tuple[str, frozenset[str]], ...]", "str | None"]


def _check_ext(ext: ExtensionSpec, options: tuple[MatchOption, ...], table: str, proto: str | None) -> _CheckResult:
    """Table, option and protocol checks of one match or target: (error, hook restrictions, warning)."""
    names = {o.name for o in options}
    label = f"{ext.kind} `{ext.name}'"
    if ext.name == "DROP" and table == "nat":
        return _NAT_DROP, (), None
    if ext.tables is not None and table not in ext.tables:
        return f"{label} is only valid in the {'/'.join(sorted(ext.tables))} table, not in `{table}'", (), None
    for group in ext.required:
        if not names.intersection(group):
            return f"{label}: option {' or '.join('--' + o for o in group)} must be specified", (), None
    for group in ext.exclusive:
        given = [o for o in group if o in names]
        if len(given) > 1:
            return f"{label}: options {' and '.join('--' + g for g in given)} cannot be combined", (), None
    if ext.protocols is not None and proto not in ext.protocols:
        need = "' or `-p ".join(sorted(ext.protocols))
        return f"{label} requires `-p {need}'", (), None
    if ext.name in _VALUE_CHECKED and _value_flag(ext.name, options):
        if ext.name == "REJECT" and proto != "tcp":
            return "REJECT --reject-with tcp-reset is only valid with -p tcp", (), None
        if ext.name != "REJECT" and proto not in _PORT_PROTOS:
            return f"{ext.name}: Need TCP, UDP, SCTP or DCCP with port specification", (), None
    hooks: list[tuple[str, frozenset[str]]] = []
    if ext.hooks is not None:
        hooks.append((label, ext.hooks))
    for o in options:
        os_ = ext.option(o.name)
        if os_ is not None and os_.hooks is not None:
            hooks.append((f"{label} option --{o.name}", os_.hooks))
    warning = None
    if ext.legacy_tables is not None and table not in ext.legacy_tables:
        warning = (
            f"{label} in table `{table}': iptables-legacy only accepts it in {'/'.join(sorted(ext.legacy_tables))}"
        )
    return None, tuple(hooks), warning


def _value_flag(name: str, options: tuple[MatchOption, ...]) -> bool:
    """REJECT: --reject-with tcp-reset given; NAT targets: a port given."""
    if name == "REJECT":
        return any(o.values == ("tcp-reset",) for o in options)
    for o in options:
        if o.name == "to-ports":
            return True
        if o.name in ("to-destination", "to-source") and o.values:
            v = o.values[0]
            if (v.startswith("[") and "]:" in v) or (not v.startswith("[") and v.count(":") == 1):
                return True
    return False
