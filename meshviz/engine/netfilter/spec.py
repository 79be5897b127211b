"""The iptables extensions meshviz knows, as data.

For every match module and target this module records its options, how many
values each option takes, whether it may be negated with `!`, what kind of
value it expects (for validation), and where the kernel accepts it (address
families, tables, hooks, required `-p` protocol).

The data was taken from iptables 1.8.9 (`iptables -m MODULE -h`,
`iptables -j TARGET -h`, and the error each option gives when its value is
left out) and checked against the kernel by adding every target and match to
every built-in chain of every table - directly and through a user chain -
inside a throwaway network namespace, with both iptables-nft and
iptables-legacy.  Where the two back ends differ (only `TRACE`: raw-only under
legacy) the restriction is recorded as `legacy_tables` and reported as a
warning, not an error.  Kernel-side restrictions can change between kernel
versions (`owner` only in OUTPUT/POSTROUTING is this kernel's rule).

Options are written in a small notation, one string per option::

    "!dport|destination-port:portrange"   invertible, alias, value kind
    "syn/0"                               a flag: takes no value
    "tcp-flags:tcpflags/2"                takes two values
    "rateest-bps1:any/?"                  takes a value only if the next token is not an option
    "reqid:int*"                          may be repeated in one rule

The first name is the canonical long form that the model stores; the others
are aliases that getopt also accepts verbatim.  Besides these aliases
iptables (through getopt_long) accepts any unambiguous prefix of a long
option (`--to-port` for REDIRECT's `--to-ports`, `--uid` for `--uid-owner`);
the parser implements that rule in `resolve_option`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from meshviz.engine.core.model import Family

PRE, IN, FWD, OUT, POST = "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"
HOOKS: tuple[str, ...] = (PRE, IN, FWD, OUT, POST)
TABLES: tuple[str, ...] = ("raw", "mangle", "nat", "filter", "security")

V4 = frozenset({Family.IPV4})
V6 = frozenset({Family.IPV6})
BOTH = frozenset({Family.IPV4, Family.IPV6})

OPTIONAL = -1  # nargs: one value if the next token does not look like an option

# Targets built into iptables itself (not extensions).
STANDARD_TARGETS: frozenset[str] = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE"})

# Name of the pseudo match the lenient parser uses for tokens it could not parse.
UNPARSED_MODULE = "unparsed"


# --------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One option of an extension."""

    name: str  # canonical long name, without the leading dashes
    aliases: tuple[str, ...] = ()
    nargs: int = 1  # 0, 1, 2 or OPTIONAL
    invertible: bool = False
    kind: str = "any"  # value kind, see VALIDATORS
    repeatable: bool = False
    hooks: frozenset[str] | None = None  # hooks where this option is allowed (None: anywhere)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class ExtensionSpec:
    """A match module (`-m NAME`) or a target (`-j NAME`)."""

    name: str
    kind: str  # "match" or "target"
    options: tuple[OptionSpec, ...] = ()
    families: frozenset[Family] = BOTH
    tables: frozenset[str] | None = None  # tables where the kernel accepts it (None: all)
    hooks: frozenset[str] | None = None  # hooks whose chains may use it (None: all)
    protocols: frozenset[str] | None = None  # the rule needs `-p` one of these (not negated)
    required: tuple[tuple[str, ...], ...] = ()  # each: at least one of these options must be given
    exclusive: tuple[tuple[str, ...], ...] = ()  # each: at most one of these options
    terminating: bool = False  # targets: stops traversal of the chain
    legacy_tables: frozenset[str] | None = None  # stricter table set of iptables-legacy only
    summary: str = ""
    _by_name: dict[str, OptionSpec] = field(default_factory=dict, init=False, repr=False, compare=False)
    # True when the only rule-level constraint is `required` (most matches): the parser's fast path
    simple: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for opt in self.options:
            for n in opt.names:
                self._by_name[n] = opt
        simple = (
            self.tables is None
            and self.hooks is None
            and self.protocols is None
            and not self.exclusive
            and self.legacy_tables is None
            and all(o.hooks is None for o in self.options)
            and self.name not in ("REDIRECT", "MASQUERADE", "DNAT", "SNAT", "REJECT")
        )
        object.__setattr__(self, "simple", simple)

    def option(self, name: str) -> OptionSpec | None:
        """The option spec for a canonical name or exact alias (without dashes)."""
        return self._by_name.get(name)

    def option_names(self) -> Iterable[str]:
        return self._by_name.keys()


def _opt(text: str) -> OptionSpec:
    """Build an OptionSpec from the notation described in the module docstring."""
    invertible = text.startswith("!")
    if invertible:
        text = text[1:]
    repeatable = text.endswith("*")
    if repeatable:
        text = text[:-1]
    nargs = 1
    if "/" in text:
        text, _, n = text.rpartition("/")
        nargs = OPTIONAL if n == "?" else int(n)
    kind = "any"
    if ":" in text:
        text, _, kind = text.partition(":")
    if nargs == 0:
        kind = "none"
    names = text.split("|")
    return OptionSpec(
        name=names[0], aliases=tuple(names[1:]), nargs=nargs, invertible=invertible, kind=kind, repeatable=repeatable
    )


def _ext(
    kind: str,
    name: str,
    options: str = "",
    *,
    families: frozenset[Family] = BOTH,
    tables: Iterable[str] | None = None,
    hooks: Iterable[str] | None = None,
    protocols: Iterable[str] | None = None,
    required: Iterable[Iterable[str]] = (),
    exclusive: Iterable[Iterable[str]] = (),
    option_hooks: dict[str, Iterable[str]] | None = None,
    terminating: bool = False,
    legacy_tables: Iterable[str] | None = None,
    summary: str = "",
) -> ExtensionSpec:
    opts = [_opt(t) for t in options.split()]
    if option_hooks:
        opts = [
            OptionSpec(o.name, o.aliases, o.nargs, o.invertible, o.kind, o.repeatable, frozenset(option_hooks[o.name]))
            if o.name in option_hooks
            else o
            for o in opts
        ]
    return ExtensionSpec(
        name=name,
        kind=kind,
        options=tuple(opts),
        families=families,
        tables=frozenset(tables) if tables is not None else None,
        hooks=frozenset(hooks) if hooks is not None else None,
        protocols=frozenset(protocols) if protocols is not None else None,
        required=tuple(tuple(r) for r in required),
        exclusive=tuple(tuple(x) for x in exclusive),
        terminating=terminating,
        legacy_tables=frozenset(legacy_tables) if legacy_tables is not None else None,
        summary=summary,
    )


def _m(name: str, options: str = "", **kw: object) -> ExtensionSpec:
    return _ext("match", name, options, **kw)  # type: ignore[arg-type]


def _t(name: str, options: str = "", **kw: object) -> ExtensionSpec:
    return _ext("target", name, options, **kw)  # type: ignore[arg-type]


_PORT_PROTOS = ("tcp", "udp", "udplite", "sctp", "dccp")

# --------------------------------------------------------------------------
# Match modules
# --------------------------------------------------------------------------

MATCHES: dict[str, ExtensionSpec] = {
    m.name: m
    for m in (
        _m(
            "tcp",
            "!sport|source-port:portrange !dport|destination-port:portrange !tcp-flags:tcpflags/2 !syn/0"
            " !tcp-option:int",
            protocols=("tcp",),
            exclusive=(("syn", "tcp-flags"),),
            summary="TCP ports and flags",
        ),
        _m("udp", "!sport|source-port:portrange !dport|destination-port:portrange", protocols=("udp",)),
        _m(
            "sctp",
            "!sport|source-port:portrange !dport|destination-port:portrange !chunk-types:any/2",
            protocols=("sctp",),
        ),
        _m(
            "dccp",
            "!sport|source-port:portrange !dport|destination-port:portrange !dccp-types:any !dccp-option:int",
            protocols=("dccp",),
        ),
        _m("icmp", "!icmp-type:any", families=V4, protocols=("icmp",), summary="ICMP type/code"),
        _m("icmp6", "!icmpv6-type:any", families=V6, protocols=("ipv6-icmp",), summary="ICMPv6 type/code"),
        _m("esp", "!espspi:intrange", protocols=("esp",)),
        _m("ah", "!ahspi:intrange !ahlen:int ahres/0"),
        _m("ipcomp", "!ipcompspi:intrange compres/0"),
        _m(
            "multiport",
            "!sports|source-ports:portlist !dports|destination-ports:portlist !ports:portlist",
            protocols=_PORT_PROTOS,
            required=(("sports", "dports", "ports"),),
            exclusive=(("sports", "dports", "ports"),),
            summary="up to 15 ports or port ranges",
        ),
        _m(
            "owner",
            "!uid-owner:idrange !gid-owner:idrange !socket-exists/0 suppl-groups/0",
            hooks=(OUT, POST),
            required=(("uid-owner", "gid-owner", "socket-exists"),),
            summary="owner of the local socket that sent the packet",
        ),
        _m("mark", "!mark:mark", required=(("mark",),), summary="packet nfmark"),
        _m("connmark", "!mark:mark", required=(("mark",),), summary="conntrack mark"),
        _m(
            "conntrack",
            "!ctstate:ctstate !ctproto:proto !ctorigsrc:addr !ctorigdst:addr !ctreplsrc:addr !ctrepldst:addr"
            " !ctorigsrcport:portrange !ctorigdstport:portrange !ctreplsrcport:portrange !ctrepldstport:portrange"
            " !ctstatus:ctstatus !ctexpire:intrange ctdir:ctdir",
            required=(
                (
                    "ctstate",
                    "ctproto",
                    "ctorigsrc",
                    "ctorigdst",
                    "ctreplsrc",
                    "ctrepldst",
                    "ctorigsrcport",
                    "ctorigdstport",
                    "ctreplsrcport",
                    "ctrepldstport",
                    "ctstatus",
                    "ctexpire",
                    "ctdir",
                ),
            ),
            summary="conntrack state",
        ),
        _m("state", "!state:state", required=(("state",),), summary="conntrack state (old name of conntrack)"),
        _m("socket", "nowildcard/0 transparent/0 restore-skmark/0", hooks=(PRE, IN), summary="a local socket exists"),
        _m(
            "addrtype",
            "!src-type:addrtype !dst-type:addrtype limit-iface-in/0 limit-iface-out/0",
            required=(("src-type", "dst-type"),),
            exclusive=(("limit-iface-in", "limit-iface-out"),),
            option_hooks={"limit-iface-in": (PRE, IN, FWD), "limit-iface-out": (FWD, OUT, POST)},
            summary="address type (LOCAL, UNICAST, ...)",
        ),
        _m("comment", "comment:string", required=(("comment",),), summary="a comment; always matches"),
        _m(
            "statistic",
            "mode:statmode !probability:probability !every:int packet:int",
            required=(("mode",),),
            summary="random or every-nth packet",
        ),
        _m(
            "set",
            "!match-set:any/2 return-nomatch/0 !update-counters/0 !update-subcounters/0 !packets-eq:int"
            " packets-lt:int packets-gt:int !bytes-eq:int bytes-lt:int bytes-gt:int",
            required=(("match-set",),),
            summary="ipset membership",
        ),
        _m("mac", "!mac-source:mac", hooks=(PRE, IN, FWD)),
        _m("iprange", "!src-range:addrrange !dst-range:addrrange", required=(("src-range", "dst-range"),)),
        _m("limit", "limit:rate limit-burst:int"),
        _m(
            "hashlimit",
            "hashlimit-upto|hashlimit:rate hashlimit-above:rate hashlimit-mode:any hashlimit-srcmask:int"
            " hashlimit-dstmask:int hashlimit-name:any hashlimit-burst:any hashlimit-htable-size:int"
            " hashlimit-htable-max:int hashlimit-htable-gcinterval:int hashlimit-htable-expire:int"
            " hashlimit-rate-match/0 hashlimit-rate-interval:int",
            required=(("hashlimit-name",),),
        ),
        _m("length", "!length:intrange", required=(("length",),)),
        _m("pkttype", "!pkt-type:any"),
        _m(
            "physdev",
            "!physdev-in:iface !physdev-out:iface !physdev-is-in/0 !physdev-is-out/0 !physdev-is-bridged/0",
            required=(("physdev-in", "physdev-out", "physdev-is-in", "physdev-is-out", "physdev-is-bridged"),),
        ),
        _m("string", "from:int to:int algo:any icase/0 !string:string !hex-string:string"),
        _m(
            "recent",
            "!set/0 !rcheck/0 !update/0 !remove/0 seconds:int reap/0 hitcount:int rttl/0 name:any rsource/0"
            " rdest/0 mask:any",
            required=(("set", "rcheck", "update", "remove"),),
            exclusive=(("set", "rcheck", "update", "remove"),),
        ),
        _m("tos", "!tos:any"),
        _m("dscp", "!dscp:int !dscp-class:any"),
        _m("ttl", "!ttl-eq:int ttl-lt:int ttl-gt:int", families=V4),
        _m("hl", "!hl-eq:int hl-lt:int hl-gt:int", families=V6),
        _m("connbytes", "!connbytes:intrange connbytes-dir:any connbytes-mode:any"),
        _m(
            "connlimit", "connlimit-upto:int connlimit-above:int connlimit-mask:int connlimit-saddr/0 connlimit-daddr/0"
        ),
        _m("u32", "!u32:string"),
        _m(
            "policy",
            "dir:any pol:any strict/0 !reqid:int* !spi:int* !proto:any* !mode:any* !tunnel-src:addr* !tunnel-dst:addr*"
            " next/0*",
            summary="IPsec policy",
        ),
        _m("rpfilter", "loose/0 validmark/0 accept-local/0 invert/0", tables=("raw", "mangle"), hooks=(PRE,)),
        _m("cgroup", "!path:any !cgroup:int", hooks=(IN, OUT, POST)),
        _m(
            "devgroup",
            "!src-group:mark !dst-group:mark",
            option_hooks={"src-group": (PRE, IN, FWD), "dst-group": (FWD, OUT, POST)},
        ),
        _m("helper", "!helper:any"),
        _m("nfacct", "nfacct-name:any", required=(("nfacct-name",),)),
        _m("realm", "!realm:mark", families=V4, hooks=(IN, FWD, OUT, POST)),
        _m(
            "time",
            "datestart:any datestop:any timestart:any timestop:any !monthdays:any !weekdays:any kerneltz/0"
            " localtz/0 utc/0 contiguous/0",
        ),
        _m("bpf", "bytecode:string object-pinned:any"),
        _m("cpu", "!cpu:int"),
        _m("quota", "!quota:int"),
        _m("ipvs", "!ipvs/0 !vproto:proto !vaddr:addr !vport:port vdir:ctdir !vmethod:any !vportctl:port"),
        _m(
            "cluster",
            "cluster-total-nodes:int !cluster-local-node:int !cluster-local-nodemask:int cluster-hash-seed:int",
        ),
        _m("ecn", "!ecn-tcp-cwr/0 !ecn-tcp-ece/0 !ecn-ip-ect:int"),
        _m("tcpmss", "!mss:intrange", protocols=("tcp",)),
        _m("connlabel", "!label:any set/0"),
        _m("osf", "!genre:any ttl:int log:int", families=V4, hooks=(PRE, IN, FWD)),
        _m(
            "rateest",
            "rateest1|rateest:any rateest2:any rateest-delta/0 rateest-bps1|rateest-bps:any/? rateest-pps1|rateest-pps:any/?"
            " rateest-bps2:any/? rateest-pps2:any/? !rateest-lt/0 !rateest-gt/0 !rateest-eq/0",
        ),
        # IPv6 only
        _m("frag", "!fragid:intrange !fraglen:int fragres/0 fragfirst/0 fragmore/0 fraglast/0", families=V6),
        _m("hbh", "!hbh-len:int hbh-opts:any", families=V6),
        _m("dst", "!dst-len:int dst-opts:any", families=V6),
        _m(
            "rt",
            "!rt-type:int !rt-segsleft:intrange !rt-len:int rt-0-res/0 rt-0-addrs:any rt-0-not-strict/0",
            families=V6,
        ),
        _m("mh", "!mh-type:any", families=V6, protocols=("mobility-header",)),
        _m("eui64", "", families=V6, hooks=(PRE, IN, FWD)),
        _m("ipv6header", "!header:any soft/0", families=V6, required=(("header",),)),
        _m(
            "srh",
            "!srh-next-hdr:int !srh-hdr-len-eq:int !srh-hdr-len-gt:int !srh-hdr-len-lt:int !srh-segs-left-eq:int"
            " !srh-segs-left-gt:int !srh-segs-left-lt:int !srh-last-entry-eq:int !srh-last-entry-gt:int"
            " !srh-last-entry-lt:int !srh-tag:int !srh-psid:addr !srh-nsid:addr !srh-lsid:addr",
            families=V6,
        ),
    )
}

# `-p PROTO` loads the match named like the protocol when an unknown option follows.
IMPLICIT_MATCH: dict[str, str] = {
    "tcp": "tcp",
    "udp": "udp",
    "sctp": "sctp",
    "dccp": "dccp",
    "icmp": "icmp",
    "ipv6-icmp": "icmp6",
    "esp": "esp",
    "ah": "ah",
    "mobility-header": "mh",
}

# --------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------

_NAT_PORT_PROTOS = ("tcp", "udp", "sctp", "dccp")

TARGETS: dict[str, ExtensionSpec] = {
    t.name: t
    for t in (
        _t("ACCEPT", terminating=True, summary="accept the packet (this table)"),
        _t(
            "DROP",
            tables=("raw", "mangle", "filter", "security"),  # iptables refuses DROP in nat (userspace check)
            terminating=True,
            summary="drop the packet",
        ),
        _t("RETURN", terminating=True, summary="return to the calling chain"),
        _t("QUEUE", terminating=True, summary="hand to userspace queue 0"),
        _t(
            "REJECT",
            "reject-with:rejectwith",
            tables=("filter",),
            hooks=(IN, FWD, OUT),
            terminating=True,
            summary="drop and answer with an ICMP error or TCP RST",
        ),
        _t(
            "REDIRECT",
            "to-ports:natports random/0",
            tables=("nat",),
            hooks=(PRE, OUT),
            terminating=True,
            summary="DNAT to the primary address of the incoming interface (127.0.0.1 for local traffic)",
        ),
        _t(
            "TPROXY",
            "on-port:port on-ip:addr tproxy-mark:mark",
            tables=("mangle",),
            hooks=(PRE,),
            protocols=("tcp", "udp"),
            required=(("on-port",),),
            terminating=True,
            summary="deliver to a local transparent socket without rewriting the packet",
        ),
        _t(
            "MARK",
            "set-xmark:mark set-mark:mark and-mark:int or-mark:int xor-mark:int",
            required=(("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"),),
            exclusive=(("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"),),
            summary="set the packet nfmark",
        ),
        _t(
            "CONNMARK",
            "set-xmark:mark save-mark/0 restore-mark/0 nfmask:int ctmask:int mask:int set-mark:mark and-mark:int"
            " or-mark:int xor-mark:int left-shift-mark:int right-shift-mark:int",
            required=(("set-xmark", "save-mark", "restore-mark", "set-mark", "and-mark", "or-mark", "xor-mark"),),
            exclusive=(("set-xmark", "save-mark", "restore-mark", "set-mark", "and-mark", "or-mark", "xor-mark"),),
            summary="set, save or restore the conntrack mark",
        ),
        _t(
            "DNAT",
            "to-destination:hostport random/0 persistent/0",
            tables=("nat",),
            hooks=(PRE, OUT),
            required=(("to-destination",),),
            terminating=True,
            summary="rewrite the destination",
        ),
        _t(
            "SNAT",
            "to-source:hostport random/0 random-fully/0 persistent/0",
            tables=("nat",),
            hooks=(IN, POST),
            required=(("to-source",),),
            terminating=True,
            summary="rewrite the source",
        ),
        _t(
            "MASQUERADE",
            "to-ports:natports random/0 random-fully/0",
            tables=("nat",),
            hooks=(POST,),
            terminating=True,
            summary="SNAT to the outgoing interface's address",
        ),
        _t("NETMAP", "to:addr", tables=("nat",), hooks=(PRE, IN, OUT, POST), required=(("to",),), terminating=True),
        _t(
            "CT",
            "notrack/0 helper:any timeout:any ctevents:any expevents:any zone:any zone-orig:any zone-reply:any",
            tables=("raw",),
            hooks=(PRE, OUT),
            summary="conntrack template (zone, helper, notrack)",
        ),
        _t("NOTRACK", tables=("raw",), hooks=(PRE, OUT), summary="do not track the connection"),
        _t(
            "LOG",
            "log-level:any log-prefix:string log-tcp-sequence/0 log-tcp-options/0 log-ip-options/0 log-uid/0"
            " log-macdecode/0",
            summary="kernel log",
        ),
        _t("NFLOG", "nflog-group:int nflog-range:int nflog-size:int nflog-threshold:int nflog-prefix:string"),
        _t("ULOG", "ulog-nlgroup:int ulog-cprange:int ulog-qthreshold:int ulog-prefix:string", families=V4),
        _t("TRACE", legacy_tables=("raw",), summary="netfilter packet tracing"),
        _t(
            "NFQUEUE",
            "queue-num:int queue-balance:intrange queue-bypass/0 queue-cpu-fanout/0",
            terminating=True,
            summary="hand to a userspace queue",
        ),
        _t("CLASSIFY", "set-class:any", hooks=(FWD, OUT, POST), required=(("set-class",),)),
        _t("DSCP", "set-dscp:int set-dscp-class:any", tables=("mangle",)),
        _t("TOS", "set-tos:any and-tos:int or-tos:int xor-tos:int", tables=("mangle",)),
        _t("TTL", "ttl-set:int ttl-dec:int ttl-inc:int", families=V4, tables=("mangle",)),
        _t("HL", "hl-set:int hl-dec:int hl-inc:int", families=V6, tables=("mangle",)),
        _t(
            "TCPMSS",
            "set-mss:int clamp-mss-to-pmtu/0",
            protocols=("tcp",),
            option_hooks={"clamp-mss-to-pmtu": (FWD, OUT, POST)},
            required=(("set-mss", "clamp-mss-to-pmtu"),),
        ),
        _t("CHECKSUM", "checksum-fill/0", tables=("mangle",)),
        _t("CONNSECMARK", "save/0 restore/0", tables=("mangle", "security")),
        _t("SECMARK", "selctx:string", tables=("mangle", "security")),
        _t("AUDIT", "type:any"),
        _t(
            "SET",
            "add-set:any/2 del-set:any/2 map-set:any/2 exist/0 timeout:int map-mark/0 map-prio/0 map-queue/0",
            required=(("add-set", "del-set", "map-set"),),
        ),
        _t("IDLETIMER", "timeout:int label:any alarm/0", required=(("timeout",),)),
        _t("LED", "led-trigger-id:any led-delay:any led-always-blink/0"),
        _t("TEE", "gateway:addr oif:iface", required=(("gateway",),)),
        _t(
            "SYNPROXY",
            "sack-perm/0 timestamp/0 wscale:int mss:int ecn/0",
            hooks=(IN, FWD),
            protocols=("tcp",),
            terminating=True,
        ),
        _t(
            "HMARK",
            "hmark-tuple:any hmark-mod:int hmark-offset:int hmark-rnd:int hmark-src-prefix:int hmark-dst-prefix:int"
            " hmark-sport-mask:int hmark-dport-mask:int hmark-spi-mask:int hmark-sport:int hmark-dport:int"
            " hmark-spi:int hmark-proto-mask:int",
        ),
        _t("RATEEST", "rateest-name:any rateest-interval:any rateest-ewmalog:any"),
        _t("TCPOPTSTRIP", "strip-options:any", tables=("mangle",), protocols=("tcp",)),
        _t("ECN", "ecn-tcp-remove/0 ecn-tcp-cwr/0 ecn-tcp-ece/0 ecn-ip-ect:int", families=V4, tables=("mangle",)),
        _t("DNPT", "src-pfx:addr dst-pfx:addr", families=V6, tables=("mangle",), hooks=(PRE, OUT)),
        _t("SNPT", "src-pfx:addr dst-pfx:addr", families=V6, tables=("mangle",), hooks=(IN, POST)),
        _t(
            "CLUSTERIP",
            "new/0 hashmode:any clustermac:mac total-nodes:int local-node:int hash-init:int",
            families=V4,
        ),
    )
}


def extension(kind: str, name: str) -> ExtensionSpec | None:
    return (MATCHES if kind == "match" else TARGETS).get(name)


# --------------------------------------------------------------------------
# The command's own options (iptables' `original_opts`), for getopt prefix matching
# --------------------------------------------------------------------------

# long name -> (short letter, takes a value)
BASE_LONG_OPTIONS: dict[str, tuple[str, bool]] = {
    "append": ("A", True),
    "delete": ("D", True),
    "check": ("C", True),
    "insert": ("I", True),
    "replace": ("R", True),
    "list": ("L", False),
    "list-rules": ("S", False),
    "flush": ("F", False),
    "zero": ("Z", False),
    "new-chain": ("N", True),
    "delete-chain": ("X", False),
    "rename-chain": ("E", True),
    "policy": ("P", True),
    "source": ("s", True),
    "destination": ("d", True),
    "src": ("s", True),
    "dst": ("d", True),
    "protocol": ("p", True),
    "in-interface": ("i", True),
    "jump": ("j", True),
    "table": ("t", True),
    "match": ("m", True),
    "numeric": ("n", False),
    "out-interface": ("o", True),
    "verbose": ("v", False),
    "wait": ("w", False),
    "wait-interval": ("W", False),
    "exact": ("x", False),
    "fragments": ("f", False),
    "fragment": ("f", False),
    "version": ("V", False),
    "help": ("h", False),
    "line-numbers": ("0", False),
    "modprobe": ("M", True),
    "set-counters": ("c", True),
    "goto": ("g", True),
    "ipv4": ("4", False),
    "ipv6": ("6", False),
}
