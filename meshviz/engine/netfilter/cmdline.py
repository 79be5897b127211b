"""Read one iptables command line the way iptables 1.8 does.

Two tokenizers - iptables-restore's (double quotes, backslash escapes inside
them) and a small POSIX-shell one for command lines - and `CommandLineParser`,
which emulates iptables' getopt loop over the tokens: options in any order,
an option belongs to the newest loaded extension that has it, unambiguous
prefixes of long options, `-p PROTO` loading the protocol's match when an
unknown option follows, `!` before an option, the old `--opt ! value` form
(with a warning).  The result is a `CommandLine`: the command, its arguments
and the rule specification with the token index of every part, so that
errors can point at a column.  `iptables_parser` turns it into the model.
"""

from __future__ import annotations

from meshviz.engine.core.model import Family
from meshviz.engine.core.names import canonical_protocol
from meshviz.engine.netfilter.model import IfaceCriterion, MatchOption
from meshviz.engine.netfilter.spec import (
    BASE_LONG_OPTIONS,
    IMPLICIT_MATCH,
    MATCHES,
    OPTIONAL,
    STANDARD_TARGETS,
    TARGETS,
    UNPARSED_MODULE,
    ExtensionSpec,
    OptionSpec,
)
from meshviz.engine.netfilter.values import check_value

# --------------------------------------------------------------------------
# One command line's rule specification
# --------------------------------------------------------------------------

# Family-specific content is recorded as (family, token index, kind); the
# message is only written if it turns out to be an error.
ADDR, VALUE, MATCH, TARGET, FRAG = "address", "value", "match", "target", "frag"

FamItem = tuple[Family, int, str]


class LineError(Exception):
    """The line is wrong: `tok` is the index of the offending token."""

    def __init__(self, tok: int, message: str):
        super().__init__(message)
        self.tok = tok
        self.message = message


class Deferred(Exception):
    """The line is dropped; its error is reported later (at COMMIT)."""


class ExtBuilder:
    """A match or target being parsed: its spec and the options seen so far."""

    __slots__ = ("implicit", "module", "options", "slots", "spec", "tok")

    def __init__(self, ext: ExtensionSpec | None, module: str, implicit: bool, tok: int):
        self.spec = ext
        self.module = module
        self.options: list[MatchOption] = []
        self.implicit = implicit
        self.tok = tok  # token index errors point at (the module or target name)
        # per option: (index of its first value, number of values); index -1 when the
        # values are not plain tokens (`--opt=value`, `--opt ! value`, optional values)
        self.slots: list[tuple[int, int]] = []

    def has(self, name: str) -> bool:
        for o in self.options:  # noqa: SIM110 - a plain loop is faster than any() on this hot path
            if o.name == name:
                return True
        return False


class CommandLine:
    """A parsed command line.  Class attributes are the defaults (cheap to create)."""

    command: str | None = None
    cmd_tok = -1
    chain: str | None = None
    chain_tok = -1
    rulenum: int | None = None
    rulenum_tok = -1
    arg2: str | None = None  # -P policy, -E new name
    arg2_tok = -1
    table: str | None = None
    table_tok = -1
    src: str | None = None
    src_tok = -1
    src_neg = False
    dst: str | None = None
    dst_tok = -1
    dst_neg = False
    proto: str | None = None
    proto_neg = False
    proto_tok = -1
    iin: IfaceCriterion | None = None
    iin_tok = -1
    iout: IfaceCriterion | None = None
    iout_tok = -1
    frag: bool | None = None
    target: ExtBuilder | None = None  # module = target name; spec None for a chain
    target_tok = -1
    goto = False
    counters: tuple[int, int] | None = None
    warnings: list[str] | None = None

    def __init__(self) -> None:
        self.matches: list[ExtBuilder] = []
        self.fam_items: list[FamItem] = []

    def warn(self, message: str) -> None:
        if self.warnings is None:
            self.warnings = []
        self.warnings.append(message)

    def has_rule_criteria(self) -> bool:
        return bool(
            self.src is not None
            or self.dst is not None
            or self.proto_tok >= 0
            or self.iin is not None
            or self.iout is not None
            or self.frag is not None
            or self.matches
            or self.target is not None
            or self.counters is not None
        )


_COMMANDS = set("AIDRNXFZPELSC")
_NOOP_SHORT = set("vnx0")
_FAST = {"-s": "s", "-d": "d", "-p": "p", "-i": "i", "-o": "o", "-m": "m", "-j": "j", "-g": "g", "-A": "A"}

# What one option occurrence resolves to: its spec, the MatchOption, and
# (value offset, family) for each value that implies an address family.
OptHit = tuple[OptionSpec, MatchOption, tuple[tuple[int, Family], ...]]


def looks_like_option(tok: str) -> bool:
    return tok.startswith("-") or tok == "!"


class CommandLineParser:
    """Parses one command line's tokens into a CommandLine, with iptables 1.8's getopt semantics."""

    def __init__(self, strict: bool, restore: bool):
        self.strict = strict
        self.restore = restore
        self.opt_cache: dict[tuple[str, str, str, bool], OptHit] = {}
        self.proto_cache: dict[str, str | None] = {}
        self.iface_cache: dict[tuple[str, bool], IfaceCriterion] = {}

    def parse(self, toks: list[str], i: int, family: Family | None = None) -> CommandLine:
        """Parse `toks[i:]`; `family` is the address family when already known (for -f)."""
        s = CommandLine()
        n = len(toks)
        invert = False
        invert_tok = -1
        loaded: list[ExtBuilder] = []  # extensions whose options getopt knows, in load order
        while i < n:
            tok = toks[i]
            letter = _FAST.get(tok)
            if letter is not None and i + 1 < n and toks[i + 1] != "!":
                # fast path: the command's common options with a plain value
                val = toks[i + 1]
                if letter == "m" and not invert:
                    ext = MATCHES.get(val)
                    if ext is not None and len(ext.families) == 2:
                        mb = ExtBuilder(ext, val, False, i + 1)
                        s.matches.append(mb)
                        loaded.append(mb)
                        i += 2
                        continue
                elif letter == "A":
                    if invert:
                        raise LineError(invert_tok, "unexpected ! flag before -A")
                    if s.command is not None:
                        raise LineError(i, f"cannot use -A with -{s.command}: one command per line")
                    if val.startswith("-"):
                        raise LineError(i, "option -A requires a chain name")
                    s.command, s.cmd_tok, s.chain, s.chain_tok = "A", i, val, i + 1
                    i += 2
                    continue
                elif letter == "s" and s.src is None:
                    s.src, s.src_tok, s.src_neg = val, i + 1, invert
                    invert = False
                    i += 2
                    continue
                elif letter == "d" and s.dst is None:
                    s.dst, s.dst_tok, s.dst_neg = val, i + 1, invert
                    invert = False
                    i += 2
                    continue
                self._base_value(s, letter, val, i + 1, invert, invert_tok, loaded, tok)
                invert = False
                i += 2
                continue
            if tok[:2] == "--" and loaded:
                mb = loaded[-1]
                ext = mb.spec
                opt = ext.option(tok[2:]) if ext is not None else None
                if opt is not None and (opt.nargs == 0 or (opt.nargs == 1 and i + 1 < n and toks[i + 1] != "!")):
                    # fast path: an option of the newest extension
                    val = toks[i + 1] if opt.nargs == 1 else ""
                    key = (mb.module, tok, val, invert)
                    hit = self.opt_cache.get(key)
                    if hit is None:
                        hit = self.opt_cache[key] = self._new_option(
                            mb, opt, (val,) if opt.nargs == 1 else (), invert, invert_tok, i + 1
                        )
                    o_spec, mo, fams = hit
                    if not o_spec.repeatable and mb.has(o_spec.name):
                        raise LineError(i, f"{mb.module}: option `--{o_spec.name}' may only be given once")
                    mb.options.append(mo)
                    mb.slots.append((i + 1, opt.nargs))
                    for k, fam in fams:
                        s.fam_items.append((fam, i + 1 + k, VALUE))
                    invert = False
                    i += 1 + opt.nargs
                    continue
            if tok == "!":
                if invert:
                    raise LineError(i, "multiple consecutive ! not allowed")
                invert, invert_tok = True, i
                i += 1
                continue
            i = self._general(s, toks, i, invert, invert_tok, loaded, family)
            invert = False
        if invert:
            raise LineError(invert_tok, "`!' is not followed by an option")
        return s

    def _general(
        self,
        s: CommandLine,
        toks: list[str],
        i: int,
        invert: bool,
        invert_tok: int,
        loaded: list[ExtBuilder],
        family: Family | None,
    ) -> int:
        n = len(toks)
        tok = toks[i]
        if len(tok) < 2 or tok[0] != "-":
            if self.strict:
                raise LineError(i, f"Bad argument `{tok}'")
            self._unparsed(s, i, toks, f"unexpected argument `{tok}'")
            return i + 1
        long_name: str | None = None
        if tok[1] != "-":
            letter = tok[1]
            if len(tok) > 2 or (letter == "f" and family == Family.IPV6):
                return self._unknown(s, toks, i, invert, invert_tok)
        else:
            name, eq, attached = tok[2:].partition("=")
            if not name:
                raise LineError(i, f"unknown option `{tok}'")
            res = self._resolve_long(name, loaded, s, i)
            if res is None:
                return self._unknown(s, toks, i, invert, invert_tok)
            if not isinstance(res, str):
                mb, opt = res
                if eq:
                    if opt.nargs == 0:
                        raise LineError(i, f"option `--{opt.name}' doesn't allow an argument")
                    values: tuple[str, ...] = (attached,)
                    j = i + 1
                    if opt.nargs == 2:
                        if j >= n or looks_like_option(toks[j]):
                            raise LineError(i, f"--{opt.name} requires two args.")
                        values += (toks[j],)
                        j += 1
                    vstart = i
                    plain = False
                else:
                    vstart = i + 1
                    values, j, invert, invert_tok, plain = self._take_values(toks, i, opt, invert, invert_tok, s)
                    vstart = j - len(values)
                _, mo, fams = self._new_option(mb, opt, values, invert, invert_tok, vstart)
                if not opt.repeatable and mb.has(opt.name):
                    raise LineError(i, f"{mb.module}: option `--{opt.name}' may only be given once")
                mb.options.append(mo)
                mb.slots.append((vstart if plain else -1, len(values)))
                for k, fam in fams:
                    s.fam_items.append((fam, vstart + k, VALUE))
                return j
            letter = res
            long_name = tok
            if eq:
                toks.insert(i + 1, attached)  # --source=1.2.3.4
                n += 1

        if letter in _COMMANDS:
            if invert:
                raise LineError(invert_tok, f"unexpected ! flag before -{letter}")
            return self._command(s, toks, i, letter)
        if letter in "sdpiojgmtM":
            if i + 1 >= n:
                raise LineError(i, f"option `{tok}' requires an argument")
            vi = i + 1
            if toks[vi] == "!" and letter in "sdpio":
                if invert:
                    raise LineError(vi, "multiple `!' flags not allowed")
                if vi + 1 >= n:
                    raise LineError(vi, "no argument following `!'")
                s.warn(
                    f"`-{letter} ! {toks[vi + 1]}' uses the old intrapositioned negation (iptables 1.8 rejects it);"
                    f" read as `! -{letter} {toks[vi + 1]}'"
                )
                invert, invert_tok = True, vi
                vi += 1
            self._base_value(s, letter, toks[vi], vi, invert, invert_tok, loaded, long_name or tok)
            return vi + 1
        if letter == "c":
            if invert:
                raise LineError(invert_tok, "cannot invert -c")
            if i + 2 >= n:
                raise LineError(i, "-c requires packet and byte counter")
            p, b = toks[i + 1], toks[i + 2]
            if not (p.isdigit() and b.isdigit()):
                raise LineError(i + 1, f"-c packet counter `{p}' / byte counter `{b}' not numeric")
            s.counters = (int(p), int(b))
            return i + 3
        if letter == "f":
            if s.frag is not None:
                raise LineError(i, "multiple -f flags not allowed")
            s.frag = not invert
            s.fam_items.append((Family.IPV4, i, FRAG))
            return i + 1
        if invert:
            raise LineError(invert_tok, f"cannot invert option `{tok}'")
        if letter in _NOOP_SHORT:
            return i + 1
        if letter in "wW":
            if self.restore:
                raise LineError(i, f"You cannot use `-{letter}' from iptables-restore")
            return i + 2 if i + 1 < n and toks[i + 1].isdigit() else i + 1
        if letter in "46":
            raise LineError(i, f"option -{letter} is not supported (give IPv4 and IPv6 rules separately)")
        if letter in "hV":
            raise LineError(i, f"option -{letter} prints help/version; it is not a rule")
        return self._unknown(s, toks, i, invert, invert_tok)

    # ---- helpers ----

    def _unknown(self, s: CommandLine, toks: list[str], i: int, invert: bool, invert_tok: int) -> int:
        """An option nobody knows: an error, or in lenient mode kept with its values as unparsed."""
        if self.strict:
            raise LineError(i, f"unknown option `{toks[i]}'")
        if invert:
            self._unparsed(s, invert_tok, toks, "negation of an unknown option")
        mb = self._unparsed(s, i, toks, f"unknown option `{toks[i]}'")
        i += 1
        while i < len(toks) and not looks_like_option(toks[i]):
            mb.options.append(MatchOption("", (toks[i],)))
            i += 1
        return i

    @staticmethod
    def _unparsed(s: CommandLine, i: int, toks: list[str], why: str) -> ExtBuilder:
        s.warn(f"{why}: `{toks[i]}' kept unparsed; the simulator reports this rule as UNSUPPORTED")
        last = s.matches[-1] if s.matches else None
        if last is not None and last.module == UNPARSED_MODULE:
            mb = last
        else:
            mb = ExtBuilder(None, UNPARSED_MODULE, False, i)
            s.matches.append(mb)
        mb.options.append(MatchOption("", (toks[i],)))
        return mb

    @staticmethod
    def _resolve_long(
        name: str, loaded: list[ExtBuilder], s: CommandLine, i: int
    ) -> str | tuple[ExtBuilder, OptionSpec] | None:
        """getopt_long: exact name (the command's options first, then the newest extension), then a unique prefix."""
        while True:
            base = BASE_LONG_OPTIONS.get(name)
            if base is not None:
                return base[0]
            for mb in reversed(loaded):
                ext = mb.spec
                if ext is not None:
                    opt = ext.option(name)
                    if opt is not None:
                        return mb, opt
            cands: dict[object, str | tuple[ExtBuilder, OptionSpec]] = {}
            for long, (letter, _) in BASE_LONG_OPTIONS.items():
                if long.startswith(name):
                    cands[("base", letter)] = letter
            for mb in loaded:
                ext = mb.spec
                if ext is None:
                    continue
                for on in ext.option_names():
                    if on.startswith(name):
                        opt = ext.option(on)
                        assert opt is not None
                        cands[(id(mb), opt.name)] = (mb, opt)
            if len(cands) == 1:
                return next(iter(cands.values()))
            if len(cands) > 1:
                return None  # ambiguous: getopt reports it as unknown
            # `-p tcp --dport 80`: the protocol's match is loaded on the first unknown option
            mod = IMPLICIT_MATCH.get(s.proto) if s.proto is not None else None
            if mod is None or any(m.module == mod for m in s.matches):
                return None
            implicit = MATCHES[mod]
            if implicit.option(name) is None and not any(n.startswith(name) for n in implicit.option_names()):
                return None  # it would not help: the option stays unknown
            mb = ExtBuilder(implicit, mod, True, i)
            s.matches.append(mb)
            loaded.append(mb)

    @staticmethod
    def _take_values(
        toks: list[str], i: int, opt: OptionSpec, invert: bool, invert_tok: int, s: CommandLine
    ) -> tuple[tuple[str, ...], int, bool, int, bool]:
        """The values of option `toks[i]`: (values, next index, invert, invert token, values are plain)."""
        n = len(toks)
        nargs = opt.nargs
        if nargs == 0:
            return (), i + 1, invert, invert_tok, True
        if nargs == OPTIONAL:
            if i + 1 < n and not looks_like_option(toks[i + 1]):
                return (toks[i + 1],), i + 2, invert, invert_tok, False
            return (), i + 1, invert, invert_tok, False
        vi = i + 1
        if vi >= n:
            raise LineError(i, f"option `--{opt.name}' requires an argument")
        plain = True
        if toks[vi] == "!" and vi + 1 < n and opt.invertible:
            if invert:
                raise LineError(vi, "multiple `!' flags not allowed")
            s.warn(
                f"`--{opt.name} ! {toks[vi + 1]}' uses the old intrapositioned negation (iptables 1.8 rejects it);"
                f" read as `! --{opt.name} {toks[vi + 1]}'"
            )
            invert, invert_tok, plain = True, vi, False
            vi += 1
        if nargs == 2:
            if vi + 1 >= n or looks_like_option(toks[vi + 1]):
                raise LineError(i, f"--{opt.name} requires two args.")
            return (toks[vi], toks[vi + 1]), vi + 2, invert, invert_tok, False
        return (toks[vi],), vi + 1, invert, invert_tok, plain

    @staticmethod
    def _new_option(
        mb: ExtBuilder, opt: OptionSpec, values: tuple[str, ...], invert: bool, invert_tok: int, vstart: int
    ) -> OptHit:
        """Validate one option occurrence: its spec, MatchOption and the families its values imply."""
        if invert and not opt.invertible:
            raise LineError(invert_tok, f"{mb.module}: option `--{opt.name}' cannot be inverted")
        fams: list[tuple[int, Family]] = []
        kind = opt.kind
        if kind != "any" and kind != "none" and kind != "string":
            for k, v in enumerate(values):
                err, f = check_value(kind, v)
                if err is not None:
                    raise LineError(vstart + k, f"{mb.module} --{opt.name}: {err}")
                if f is not None:
                    fams.append((k, f))
        return opt, MatchOption(opt.name, values, invert), tuple(fams)

    @staticmethod
    def _command(s: CommandLine, toks: list[str], i: int, letter: str) -> int:
        n = len(toks)
        if s.command is not None:
            raise LineError(i, f"cannot use -{letter} with -{s.command}: one command per line")
        s.command, s.cmd_tok = letter, i
        i += 1
        if letter in "AICDRNPE":
            if i >= n or looks_like_option(toks[i]):
                raise LineError(i - 1, f"option -{letter} requires a chain name")
            s.chain, s.chain_tok = toks[i], i
            i += 1
        elif i < n and not looks_like_option(toks[i]):  # -X -F -L -Z -S: optional chain
            s.chain, s.chain_tok = toks[i], i
            i += 1
        if letter in "IDZSR":
            if i < n and toks[i].isdigit():
                s.rulenum, s.rulenum_tok = int(toks[i]), i
                i += 1
            elif letter == "R":
                raise LineError(i if i < n else i - 1, "-R requires a rule number")
        if letter in "PE":
            if i >= n or looks_like_option(toks[i]):
                what = "a policy" if letter == "P" else "a new chain name"
                raise LineError(i - 1, f"-{letter} requires a chain and {what}")
            s.arg2, s.arg2_tok = toks[i], i
            i += 1
        return i

    def _base_value(
        self,
        s: CommandLine,
        letter: str,
        val: str,
        vi: int,
        invert: bool,
        invert_tok: int,
        loaded: list[ExtBuilder],
        optname: str,
    ) -> None:
        if letter == "s":
            if s.src is not None:
                raise LineError(vi - 1, "multiple -s flags not allowed")
            s.src, s.src_tok, s.src_neg = val, vi, invert
        elif letter == "d":
            if s.dst is not None:
                raise LineError(vi - 1, "multiple -d flags not allowed")
            s.dst, s.dst_tok, s.dst_neg = val, vi, invert
        elif letter == "p":
            if s.proto_tok >= 0:
                raise LineError(vi - 1, "multiple -p flags not allowed")
            cache = self.proto_cache
            p = cache[val] if val in cache else cache.setdefault(val, canonical_protocol(val))
            if p is None:
                raise LineError(vi, f'unknown protocol "{val}" specified')
            s.proto_tok = vi
            if p == "all":
                if invert:
                    raise LineError(invert_tok, "rule would never match protocol")
                return
            s.proto, s.proto_neg = p, invert
        elif letter == "i" or letter == "o":
            if len(val) > 15:
                raise LineError(vi, f"interface name `{val}' must be shorter than IFNAMSIZ (15)")
            if not val:
                raise LineError(vi, "empty interface name")
            crit = self.iface_cache.get((val, invert))
            if crit is None:
                crit = self.iface_cache[(val, invert)] = IfaceCriterion(val, invert)
            if letter == "i":
                if s.iin is not None:
                    raise LineError(vi - 1, "multiple -i flags not allowed")
                s.iin, s.iin_tok = crit, vi
            else:
                if s.iout is not None:
                    raise LineError(vi - 1, "multiple -o flags not allowed")
                s.iout, s.iout_tok = crit, vi
        elif letter == "m":
            if invert:
                raise LineError(invert_tok, "unexpected ! flag before --match")
            ext = MATCHES.get(val)
            if ext is None:
                if self.strict:
                    raise LineError(vi, f"Couldn't load match `{val}': unknown match module")
                mb = ExtBuilder(None, UNPARSED_MODULE, False, vi)
                mb.options.append(MatchOption("", (optname, val)))
                s.matches.append(mb)
                s.warn(f"unknown match module `{val}': kept unparsed; the simulator reports this rule as UNSUPPORTED")
                return
            mb = ExtBuilder(ext, val, False, vi)
            s.matches.append(mb)
            loaded.append(mb)
            if len(ext.families) == 1:
                s.fam_items.append((next(iter(ext.families)), vi, MATCH))
        elif letter == "j" or letter == "g":
            if invert:
                raise LineError(invert_tok, f"unexpected ! flag before -{letter}")
            if s.target is not None:
                raise LineError(vi - 1, "multiple -j/-g flags not allowed")
            if not val:
                raise LineError(vi, "empty target name")
            text = TARGETS.get(val)
            if letter == "g" and (text is not None or val in STANDARD_TARGETS):
                raise LineError(vi, f"goto `{val}' is not a chain")
            mb = ExtBuilder(text, val, False, vi)
            s.target, s.target_tok, s.goto = mb, vi, letter == "g"
            if text is not None:
                loaded.append(mb)
                if len(text.families) == 1:
                    s.fam_items.append((next(iter(text.families)), vi, TARGET))
        elif letter == "t":
            if self.restore:
                raise LineError(vi - 1, "The -t option cannot be used in iptables-restore")
            if s.table is not None:
                raise LineError(vi - 1, "multiple -t flags not allowed")
            s.table, s.table_tok = val, vi
