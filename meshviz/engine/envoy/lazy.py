"""A big config dump read lazily: its envelope decoded, its listeners and clusters indexed by name, none built.

`index_config_dump(data, source)` decodes a `{"configs": [...]}` dump with msgspec, leaving every listener, cluster,
route configuration and endpoint entry as `msgspec.Raw` (a zero-copy slice of the input bytes): the index holds each
entry's name, state and JSON path, and the node's facts from the bootstrap.  `DumpIndex.materialise()` is the eager
`parse_config_dump` (every listener and cluster built, every error and warning found); a story, `--format json` and
the upload's validation take that path.

What the index checks at once, as `parse_config_dump` does: the text is JSON (msgspec's decoder: what it refuses -
invalid JSON, NaN, nesting past its recursion limit - the eager parse judges), shaped as `{"configs": [...]}`, each section has an
`@type`, each listener/cluster entry is an object whose listener/cluster is an object with a name (or, for a
listener, an address to name it), and a state's `version_info` / an error state's `details` is a string or number.
Whatever it cannot vouch for - invalid JSON, another shape, a missing name, an object where a list belongs - is
handed to the eager parse, whose result (errors with line and column included) becomes the index (`complete` is then
True).

What waits until a dump is materialised: every problem inside a listener, cluster, route configuration or endpoint
entry (addresses, filter chains, filters, socket options, routes), inside the bootstrap's node and admin and inside
the secrets section (their ParseErrors); safejson's bounds (nesting deeper than 200 levels, numbers longer than 400
digits); and every ParseWarning (fields not modelled, filters kept by name, listeners repeated in a state, sections
not modelled).

Redaction stays complete: the sections other than these entry lists are decoded and walked by the redactor whole;
an entry is decoded and walked when its bytes, folded (lower-cased, without whitespace, "_" and "-"), hold any trace
of a secret (`_suspects`: a sensitive key's or header's name, an inline data source, a PEM or base64 PEM private
key, a JWT, a bearer token, a `\\u` escape that could spell one of these, or a non-ASCII byte).  An entry without any
of them has nothing the redactor would replace, so it stays raw; the secrets found are those the eager walk finds,
and `DumpIndex.redacted()` gives the text and count the eager redaction gives.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from meshviz.engine.core import safejson
from meshviz.engine.core.bounded import BoundedCache
from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.gcpause import gc_paused
from meshviz.engine.envoy.keys import _camel, _get
from meshviz.engine.envoy.redact import _PEM_PRIVATE_HINT, _Walker, redact, replace_secrets

if TYPE_CHECKING:
    from meshviz.engine.envoy.model import EnvoyParseResult

#: The entry lists each section kind keeps raw (snake_case; camelCase is found too).
_ENTRY_LISTS: dict[str, tuple[str, ...]] = {
    "ListenersConfigDump": (
        "static_listeners",
        "dynamic_listeners",
        "dynamic_active_listeners",
        "dynamic_warming_listeners",
        "dynamic_draining_listeners",
    ),
    "ClustersConfigDump": ("static_clusters", "dynamic_active_clusters", "dynamic_warming_clusters"),
    "RoutesConfigDump": ("static_route_configs", "dynamic_route_configs"),
    "EndpointsConfigDump": ("static_endpoint_configs", "dynamic_endpoint_configs"),
}

# Lower-cased traces of what the redactor replaces (redact.py): sensitive key names in snake_case, camelCase or
# with hyphens (token, jwt, jwks, bearer, secret, password, passwd, api key, authorization, session ticket keys,
# credentials, cookie, private key), sensitive header names (the same words), inline data sources, and the values it
# recognises anywhere (a JWT starts "eyJ", a bearer token holds "earer", a PEM private key "PRIVATE KEY", a base64
# one one of three prefixes, which all hold "ls0t" lower-cased).  They are looked for in the entries' bytes folded:
# lower-cased, without JSON's whitespace and without "_" and "-" ("api_key", "api-key" and "apiKey" all read
# "apikey"); no trace holds a dropped byte, so dropping them only joins what was apart (more matches, never fewer).
# JSON escapes spell a letter only as `\uXXXX`: see _LETTER_ESCAPE.
_TRACES = (
    b"token",
    b"jw",
    b"earer",
    b"ecret",
    b"passw",
    b"apikey",
    b"authorization",
    b"session",
    b"credential",
    b"cookie",
    b"inline",
    b"eyj",
    b"ls0t",
)
_FOLD = bytes(range(256)).lower()
_DROPPED = b" \t\r\n_-"
_PRIVATE = b"private"
# A private key given as a file name only (Istio before SDS: every mTLS cluster has one).  An object holding only a
# `filename` gives the redactor nothing to replace whatever key it is under (a file name is kept; its text is still
# looked at for the traces), so the `private` of its key is no trace.  (A match never spans two entries: a string
# ends inside its entry.)
_PRIVATE_KEY_FILE = re.compile(rb'"privatekey":\{"filename":"[^"\\\0]*"\}')
_PRIVATE_KEY_FILE_AS_IS = re.compile(
    rb'"(?:private_key|privateKey|PRIVATE_KEY|PrivateKey)"\s*:\s*\{\s*"filename"\s*:\s*"[^"\\]*"\s*\}'
)
# Python's str.lower(), which the redactor applies to keys and header names, maps a few non-ASCII characters to
# ASCII letters: an entry with any non-ASCII byte is walked.
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# `\u` escapes other than the ones Envoy writes for < > & ' (which spell nothing the redactor looks for).
_LETTER_ESCAPE = re.compile(rb"\\u(?!00(?:3c|3e|26|27))")


#: Entries looked at together (a few MiB: one C pass per trace over each batch, little memory).
_BATCH = 1 << 22


def _suspects(items: list[Any]) -> set[int]:
    """The indexes of the `items` (raw JSON values) that may hold a secret.  An item left out has nothing the
    redactor's walk would replace, whatever its context, for items whose ancestors are neither secret nor TLS (the
    entries of a section's lists): the walk of them starts afresh."""
    found: set[int] = set()
    start = 0
    while start < len(items):
        end, size = start, 0
        while end < len(items) and (size < _BATCH or end == start):
            size += memoryview(items[end]).nbytes
            end += 1
        found.update(start + i for i in _suspects_in_batch(items[start:end]))
        start = end
    return found


def _suspects_in_batch(items: list[Any]) -> set[int]:
    # NUL never appears in JSON text (a control character must be escaped): it separates the items, and no trace
    # holds it, so no match spans two items.
    folded = b"\0".join(items).translate(_FOLD, _DROPPED)
    ends: list[int] = []
    pos = folded.find(b"\0")
    while pos >= 0:
        ends.append(pos)
        pos = folded.find(b"\0", pos + 1)
    ends.append(len(folded))
    found: set[int] = set()

    def mark(pos: int, nxt: Any) -> None:
        while pos >= 0:
            i = bisect.bisect_left(ends, pos)
            found.add(i)
            pos = nxt(ends[i] + 1)

    for trace in _TRACES:
        mark(folded.find(trace), lambda at, trace=trace: folded.find(trace, at))
    mark(_search(_LETTER_ESCAPE, folded, 0), lambda at: _search(_LETTER_ESCAPE, folded, at))
    if not folded.isascii():  # "\u212a" (the Kelvin sign) lower-cases to "k": "to\u212aen" is a token key
        mark(_search(_NON_ASCII, folded, 0), lambda at: _search(_NON_ASCII, folded, at))
    benign = {m.start() + 1 for m in _PRIVATE_KEY_FILE.finditer(folded)}
    files: dict[int, int] = {}  # entry -> its private key file names, as the folded bytes read them
    pos = folded.find(_PRIVATE)
    while pos >= 0:
        i = bisect.bisect_left(ends, pos)
        if pos in benign:
            files[i] = files.get(i, 0) + 1
        else:
            found.add(i)
        pos = folded.find(_PRIVATE, pos + 1)
    # Folded, "fileName" and "file_name" read "filename", but the redactor keeps only `filename`: each must be one
    # in the entry's own bytes too.
    for i, n in files.items():
        if i not in found and len(_PRIVATE_KEY_FILE_AS_IS.findall(items[i])) != n:
            found.add(i)
    return found


def _search(pattern: re.Pattern[bytes], data: bytes, pos: int) -> int:
    m = pattern.search(data, pos)
    return m.start() if m else -1


class _CannotVouch(Exception):
    """The lazy reading cannot vouch for this text: the eager parse decides."""


def _decode(raw: bytes | msgspec.Raw, kind: Any = Any) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.MsgspecError, RecursionError, ValueError) as exc:
        raise _CannotVouch(str(exc)) from exc


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, msgspec.Raw) and memoryview(v).nbytes == 4 and bytes(v) == b"null")


def _field(d: dict[str, Any], name: str) -> Any:
    """`parse_base._get` for an object whose values may still be raw: null is missing, camelCase found too."""
    v = d.get(name)
    if _is_null(v) and "_" in name:
        v = d.get(_camel(name))
    return None if _is_null(v) else v


def _value(v: Any) -> Any:
    return _decode(v) if isinstance(v, msgspec.Raw) else v


def _object(v: Any) -> dict[str, Any]:
    """An object (its fields left raw when it came raw); anything else the eager parse judges."""
    if isinstance(v, msgspec.Raw):
        v = _decode(v, dict[str, msgspec.Raw])
    if not isinstance(v, dict):
        raise _CannotVouch("expected an object")
    return v


def _string(v: Any, *, empty: bool = True) -> str | None:
    """A string field as the eager parse reads it (`_str`: numbers become text)."""
    v = _value(v)
    if v is None or isinstance(v, str):
        if not empty and not v:
            raise _CannotVouch("no name")
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    raise _CannotVouch("expected a string")


@dataclass(frozen=True)
class IndexedListener:
    """A listener as the eager parse names it; `path` is its object's JSON path ("" when the eager parse made the
    index), the path its ParseErrors will name."""

    name: str
    state: str
    origin: str
    path: str
    error_detail: str | None = None


@dataclass(frozen=True)
class IndexedCluster:
    """A cluster by name and state; `path` as for `IndexedListener`."""

    name: str
    state: str
    path: str


@dataclass(frozen=True, eq=False)
class DumpIndex:
    """A config dump's listeners and clusters by name, its node and sections; `materialise()` builds the model."""

    source: str
    node_id: str | None
    node_cluster: str | None
    node_metadata: tuple[tuple[str, str], ...]
    listeners: tuple[IndexedListener, ...]
    clusters: tuple[IndexedCluster, ...]
    route_configs: int
    endpoint_configs: int
    sections: tuple[str, ...]
    #: String values the redaction replaces (in `redacted()`'s count, a value repeated elsewhere counts again).
    secret_values: int
    #: True when the eager parse made this index: `errors` and `warnings` are then all of the dump's.
    complete: bool
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()
    #: The dump as given (bytes are decoded only when the text is asked for).
    _input: bytes | str = field(default="", repr=False)
    _secrets: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def interception_mode(self) -> str | None:
        return dict(self.node_metadata).get("INTERCEPTION_MODE")

    def _given_text(self) -> str:
        """The dump as given: not redacted, never shown or stored as it is."""
        given = self._input
        return given if isinstance(given, str) else given.decode("utf-8", "replace")

    def materialise(self) -> EnvoyParseResult:
        """The eager parse of the dump (kept for the last few texts): every listener and cluster built."""
        from meshviz.engine.envoy.parser import parse_config_dump

        return parse_config_dump(self._given_text(), self.source)

    def redacted(self) -> tuple[str, int]:
        """The dump's text redacted and the number of values replaced: `redact_config_dump_text`'s result."""
        if self.complete:  # the eager parse read it: the eager redaction redacts it
            red = redact(self._given_text())
            return red.text, red.count
        if not self._secrets:
            return self._given_text(), 0
        original = self._given_text()
        if not safejson.valid_json_within_bounds(original):  # the eager redaction's pattern rules decide
            red = redact(original)
            return red.text, red.count
        text, count = replace_secrets(original, set(self._secrets))
        try:
            clean = _scan(text.encode("utf-8", "surrogatepass")).walker.count == 0
        except _CannotVouch:
            clean = False
        if not clean:  # the text replacement needs the eager redaction's own fallback
            red = redact(original)
            return red.text, red.count
        return text, count


@dataclass
class _Scan:
    walker: _Walker = field(default_factory=_Walker)
    listeners: list[IndexedListener] = field(default_factory=list)
    clusters: list[IndexedCluster] = field(default_factory=list)
    route_configs: int = 0
    endpoint_configs: int = 0
    sections: list[str] = field(default_factory=list)
    bootstrap: dict[str, Any] | None = None
    bootstrap_path: str = ""


class _Dump(msgspec.Struct, forbid_unknown_fields=True):
    """`{"configs": [...]}` and nothing else, each section an object (its fields raw): one pass over the bytes."""

    configs: list[dict[str, msgspec.Raw]]


def _scan(data: bytes) -> _Scan:
    scan = _Scan()
    for i, sec in enumerate(_decode(data, _Dump).configs):
        _section(scan, sec, f"configs[{i}]")
    _bootstrap_resources(scan)
    if not scan.walker.count and _PEM_PRIVATE_HINT.encode() in data:  # the eager redaction's pattern rules decide
        raise _CannotVouch("a private key outside the values")
    return scan


def _bootstrap_resources(scan: _Scan) -> None:
    """The bootstrap's static listeners and clusters, when the dump has no section of its own for them (as
    `parser._Parser.bootstrap_resources`); the bootstrap is decoded and redacted already."""
    sr = _field(scan.bootstrap, "static_resources") if scan.bootstrap is not None else None
    if sr is None:
        return
    sr = _object(sr)
    path = f"{scan.bootstrap_path}.static_resources"
    if "ListenersConfigDump" not in scan.sections:
        for i, lst in enumerate(_list(_field(sr, "listeners"))):
            p = f"{path}.listeners[{i}]"
            scan.listeners.append(IndexedListener(_listener_name(lst, None, p), "active", "static", p))
    if "ClustersConfigDump" not in scan.sections:
        for i, c in enumerate(_list(_field(sr, "clusters"))):
            cname = _string(_name(c), empty=False)
            assert cname is not None
            scan.clusters.append(IndexedCluster(cname, "static", f"{path}.clusters[{i}]"))


def _list(v: Any) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _CannotVouch("expected a list")
    return v


def _section(scan: _Scan, sec: dict[str, msgspec.Raw], path: str) -> None:
    url = _value(sec["@type"]) if "@type" in sec else None
    if not isinstance(url, str):
        raise _CannotVouch("a section without @type")
    kind = url.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    scan.sections.append(kind)
    names = _ENTRY_LISTS.get(kind, ())
    raw_keys = {k for n in names for k in (n, _camel(n)) if k in sec}
    # Everything but the entry lists is decoded and walked as the eager redaction walks it (the lists empty here).
    rest = {k: [] if k in raw_keys else _decode(v) for k, v in sec.items()}
    if _Walker._is_sensitive_header(rest):
        raise _CannotVouch("a section that looks like a header")
    scan.walker.walk(rest)
    if kind == "BootstrapConfigDump":
        b = _field(rest, "bootstrap")
        scan.bootstrap = b if isinstance(b, dict) else None
        scan.bootstrap_path = f"{path}.bootstrap"
    entries: dict[str, tuple[list[Any], set[int]]] = {}
    for key in raw_keys:
        items: list[Any] = _decode(sec[key], list[msgspec.Raw])
        suspects = _suspects(items)
        for j in suspects:
            items[j] = scan.walker.walk(_decode(items[j]))  # redacted in place: what the index reads is clean
        entries[key] = items, suspects
    for name in names:
        key = name if name in entries else _camel(name)
        if key in entries:
            items, suspects = entries[key]
            if kind in ("ListenersConfigDump", "ClustersConfigDump"):
                _typed_entries(scan, name, sec[key], items, suspects, f"{path}.{name}")
            else:
                _entries(scan, kind, name, items, f"{path}.{name}")


# The entries' envelopes as msgspec structs: a list decoded in one call, the listeners and clusters skipped but for
# their names.  Each field also under its camelCase name; `_either` reads them as `parse_base._get` does.


class _Named(msgspec.Struct):
    """A listener's or cluster's name; msgspec skips the rest of the object without building it."""

    name: Any = None


class _ClusterEntry(msgspec.Struct):
    cluster: _Named | None = None
    version_info: Any = None
    version_info_c: Any = msgspec.field(default=None, name="versionInfo")


class _ListenerEntry(msgspec.Struct):
    listener: _Named | None = None
    version_info: Any = None
    version_info_c: Any = msgspec.field(default=None, name="versionInfo")


class _ErrorState(msgspec.Struct):
    details: Any = None
    failed_configuration: _Named | None = None
    failed_configuration_c: _Named | None = msgspec.field(default=None, name="failedConfiguration")


class _DynamicListener(msgspec.Struct):
    name: Any = None
    active_state: _ListenerEntry | None = None
    active_state_c: _ListenerEntry | None = msgspec.field(default=None, name="activeState")
    warming_state: _ListenerEntry | None = None
    warming_state_c: _ListenerEntry | None = msgspec.field(default=None, name="warmingState")
    draining_state: _ListenerEntry | None = None
    draining_state_c: _ListenerEntry | None = msgspec.field(default=None, name="drainingState")
    error_state: _ErrorState | None = None
    error_state_c: _ErrorState | None = msgspec.field(default=None, name="errorState")


def _either(snake: Any, camel: Any) -> Any:
    return snake if snake is not None else camel


def _typed_entries(scan: _Scan, name: str, raw: msgspec.Raw, items: list[Any], suspects: set[int], path: str) -> None:
    """`_entries` for a listener or cluster list: the entries decoded as structs in one call; an entry that may hold
    a secret (decoded and redacted already) or whose struct leaves a doubt (no name: the address names it) is read
    by `_entries`."""
    kind = "ClustersConfigDump" if name in _CLUSTER_STATES else "ListenersConfigDump"
    struct: Any = (
        _ClusterEntry
        if kind == "ClustersConfigDump"
        else _DynamicListener
        if name == "dynamic_listeners"
        else _ListenerEntry
    )
    typed = _decode(raw, list[struct])
    for i, entry in enumerate(typed):
        p = f"{path}[{i}]"
        found = None if i in suspects else _typed_entry(name, entry, p)
        if found is None:
            _entries(scan, kind, name, [items[i]], p, numbered=False)
        else:
            for x in found:
                if isinstance(x, IndexedCluster):
                    scan.clusters.append(x)
                else:
                    scan.listeners.append(x)


def _typed_entry(name: str, e: Any, p: str) -> list[IndexedListener | IndexedCluster] | None:
    """One entry from its struct, or None when `_entries` must read it."""
    if isinstance(e, _ClusterEntry):
        _string(_either(e.version_info, e.version_info_c))
        cname = e.cluster.name if e.cluster is not None else None
        if not isinstance(cname, str) or not cname:
            return None
        return [IndexedCluster(cname, _CLUSTER_STATES[name], f"{p}.cluster")]
    if isinstance(e, _ListenerEntry):
        if name != "static_listeners":
            _string(_either(e.version_info, e.version_info_c))
        lname = e.listener.name if e.listener is not None else None
        if not isinstance(lname, str) or not lname:
            return None
        if name == "static_listeners":
            return [IndexedListener(lname, "active", "static", f"{p}.listener")]
        return [IndexedListener(lname, _V2_STATES[name], "dynamic", f"{p}.listener")]
    assert isinstance(e, _DynamicListener)
    entry_name = e.name if isinstance(e.name, str) else None
    out: list[IndexedListener | IndexedCluster] = []
    states = (
        ("active_state", "active", _either(e.active_state, e.active_state_c)),
        ("warming_state", "warming", _either(e.warming_state, e.warming_state_c)),
        ("draining_state", "draining", _either(e.draining_state, e.draining_state_c)),
    )
    for key, state, st in states:
        if st is None:
            continue
        _string(_either(st.version_info, st.version_info_c))
        if st.listener is None:
            return None
        lname = st.listener.name if isinstance(st.listener.name, str) else entry_name
        if not lname:
            return None
        out.append(IndexedListener(lname, state, "dynamic", f"{p}.{key}.listener"))
    es = _either(e.error_state, e.error_state_c)
    if es is not None:
        details = _string(es.details) or "(no details)"
        failed = _either(es.failed_configuration, es.failed_configuration_c)
        lname = entry_name if failed is None or not isinstance(failed.name, str) else failed.name
        if not lname:
            return None
        where = f"{p}.error_state.failed_configuration"
        out.append(IndexedListener(lname, "error", "dynamic", where, details.strip()))
    return out


_LISTENER_STATES = (("active_state", "active"), ("warming_state", "warming"), ("draining_state", "draining"))
_V2_STATES = {
    "dynamic_active_listeners": "active",
    "dynamic_warming_listeners": "warming",
    "dynamic_draining_listeners": "draining",
}
_CLUSTER_STATES = {
    "static_clusters": "static",
    "dynamic_active_clusters": "active",
    "dynamic_warming_clusters": "warming",
}


def _name(v: Any) -> Any:
    """The `name` of an object (raw or decoded)."""
    if isinstance(v, msgspec.Raw):
        return _decode(v, _Named).name
    if not isinstance(v, dict):
        raise _CannotVouch("expected an object")
    return v.get("name")


def _listener_name(lst: Any, entry_name: str | None, path: str) -> str:
    name = _name(lst)
    name = name if isinstance(name, str) else entry_name
    return name or _unnamed_listener(_object(lst), path)


def _unnamed_listener(d: dict[str, Any], path: str) -> str:
    """A listener without a name is named by its address, as `_ObjectParser._listener` names it."""
    from meshviz.engine.envoy.model import Address  # (the model and parser: only for this rare entry, or a story)
    from meshviz.engine.envoy.parse_base import _Bad
    from meshviz.engine.envoy.parse_objects import _ObjectParser

    d = {k: _value(v) for k, v in d.items()}
    try:
        address = _ObjectParser("", "").address(_get(d, "address"), f"{path}.address")
    except _Bad as bad:
        raise _CannotVouch(bad.message) from bad
    if address is not None and address.kind == "socket" and address.ip is None:
        raise _CannotVouch("listener address is not an IP")
    if address is None and _get(d, "internal_listener") is not None:
        address = Address("internal", "")
    return address.describe() if address is not None else path


def _entries(scan: _Scan, kind: str, name: str, items: list[Any], path: str, *, numbered: bool = True) -> None:
    """The index's view of one entry list (or of one entry: not `numbered`, `path` is its own), read as
    `parser._Parser`'s section handlers read it."""
    if kind == "RoutesConfigDump":
        scan.route_configs += len(items)
        return
    if kind == "EndpointsConfigDump":
        scan.endpoint_configs += len(items)
        return
    for i, item in enumerate(items):
        p = f"{path}[{i}]" if numbered else path
        e = _object(item)
        if kind == "ClustersConfigDump":
            _string(_field(e, "version_info"))
            cname = _string(_name(_field(e, "cluster")), empty=False)
            assert cname is not None
            scan.clusters.append(IndexedCluster(cname, _CLUSTER_STATES[name], f"{p}.cluster"))
        elif name == "static_listeners":
            lname = _listener_name(_field(e, "listener"), None, f"{p}.listener")
            scan.listeners.append(IndexedListener(lname, "active", "static", f"{p}.listener"))
        elif name in _V2_STATES:
            _string(_field(e, "version_info"))
            lname = _listener_name(_field(e, "listener"), None, f"{p}.listener")
            scan.listeners.append(IndexedListener(lname, _V2_STATES[name], "dynamic", f"{p}.listener"))
        else:
            _dynamic_listener(scan, e, p)


def _dynamic_listener(scan: _Scan, e: dict[str, Any], p: str) -> None:
    entry_name = _value(_field(e, "name"))
    entry_name = entry_name if isinstance(entry_name, str) else None
    for key, state in _LISTENER_STATES:
        st = _field(e, key)
        if st is None:
            continue
        st = _object(st)
        _string(_field(st, "version_info"))
        lname = _listener_name(_field(st, "listener"), entry_name, f"{p}.{key}.listener")
        scan.listeners.append(IndexedListener(lname, state, "dynamic", f"{p}.{key}.listener"))
    es = _field(e, "error_state")
    if es is None:
        return
    es = _object(es)
    details = _string(_field(es, "details")) or "(no details)"
    failed = _field(es, "failed_configuration")
    if failed is None:
        if not entry_name:
            raise _CannotVouch("a failed listener without a name")
        lname = entry_name
    else:
        lname = _listener_name(failed, entry_name, f"{p}.error_state.failed_configuration")
    scan.listeners.append(
        IndexedListener(lname, "error", "dynamic", f"{p}.error_state.failed_configuration", details.strip())
    )


def _node_metadata(bootstrap: dict[str, Any] | None) -> tuple[str | None, str | None, tuple[tuple[str, str], ...]]:
    node = _field(bootstrap, "node") if bootstrap is not None else None
    if node is None:
        return None, None, ()
    node = _object(node)
    md = _field(node, "metadata") or {}
    if not isinstance(md, dict):
        raise _CannotVouch("node metadata not an object")
    pairs = tuple(
        (k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))) for k, v in md.items()
    )
    return _string(_field(node, "id")), _string(_field(node, "cluster")), pairs


def index_config_dump(data: bytes | str, source: str = "<config_dump>") -> DumpIndex:
    """Index a config dump (bytes as read from a file, or text); never raises on bad input (the eager parse reports
    it, with line and column)."""
    if isinstance(data, str):
        text = data
        data = text.encode("utf-8", "surrogatepass")
    else:
        text = ""
    try:
        scan = _scan(data)
        node_id, node_cluster, metadata = _node_metadata(scan.bootstrap)
    except _CannotVouch:
        return _from_eager(text or data.decode("utf-8", "replace"), source)
    return DumpIndex(
        source=source,
        node_id=node_id,
        node_cluster=node_cluster,
        node_metadata=metadata,
        listeners=tuple(scan.listeners),
        clusters=tuple(scan.clusters),
        route_configs=scan.route_configs,
        endpoint_configs=scan.endpoint_configs,
        sections=tuple(scan.sections),
        secret_values=scan.walker.count,
        complete=False,
        _input=text or data,
        _secrets=frozenset(scan.walker.secrets),
    )


def _from_eager(text: str, source: str) -> DumpIndex:
    from meshviz.engine.envoy.parser import parse_config_dump

    result = parse_config_dump(text, source)
    c = result.config
    return DumpIndex(
        source=source,
        node_id=c.node_id,
        node_cluster=c.node_cluster,
        node_metadata=c.node_metadata,
        listeners=tuple(IndexedListener(lst.name, lst.state, lst.origin, "", lst.error_detail) for lst in c.listeners),
        clusters=tuple(IndexedCluster(cl.name, cl.state, "") for cl in c.clusters),
        route_configs=len(c.route_configs),
        endpoint_configs=len(c.endpoint_configs),
        sections=c.sections,
        secret_values=c.redactions,
        complete=True,
        errors=result.errors,
        warnings=result.warnings,
        _input=text,
    )


#: The last few redactions, by text (a chatops bot uploads the same pod again and again): redaction is a pure function
#: of the text, so the same text is redacted once.  Only texts up to _KEPT_CHARS are kept, at most _KEPT of them.
_KEPT = 8
_KEPT_CHARS = 4 << 20
_recent: BoundedCache[str, tuple[str, int]] = BoundedCache(
    lambda: (_KEPT, _KEPT * _KEPT_CHARS), lambda text, _r: len(text)
)


def redact_config_dump_text(text: str) -> tuple[str, int]:
    """Redact a config dump's text in place; returns (redacted text, number of values replaced).

    Valid JSON keeps its exact layout except for the replaced string values; text that is not valid JSON gets the
    pattern-based rules (PEM private keys, JWTs, bearer tokens, `"password": "..."`-style pairs).  The answer is
    the eager redaction's (`redact.redact`), found through the index: only the entries whose bytes could hold a
    secret are decoded and walked (`DumpIndex.redacted`; the eager walk when the index cannot vouch for a text).
    """
    if len(text) > _KEPT_CHARS:
        return _redacted(text)
    return _recent.get_or_compute(text, lambda: _redacted(text))


def _redacted(text: str) -> tuple[str, int]:
    with gc_paused():  # the eager walk, when the index falls back to it, makes ~10^6 objects without cycles
        return index_config_dump(text).redacted()


__all__ = ["DumpIndex", "IndexedCluster", "IndexedListener", "index_config_dump", "redact_config_dump_text"]
