"""Redaction of secrets in Envoy config dumps, before anything keeps the text.

What is replaced by `MARKER` (a string value is always replaced whole, so the
JSON structure stays intact):

* private keys: any value under a `private_key` field, and any string holding
  a PEM `-----BEGIN ... PRIVATE KEY-----` block, also base64-encoded (as in
  `inline_bytes`);
* the contents of the SecretsConfigDump section (`static_secrets`,
  `dynamic_active_secrets`, `dynamic_warming_secrets`): names, versions and
  type URLs are kept, every other string is replaced;
* `inline_string` / `inline_bytes` data sources under TLS contexts and
  certificates (`tls_context`, `common_tls_context`, `tls_certificates`,
  `validation_context`, `trusted_ca`, `certificate_chain` ...);
* credentials: values under `password`, `token`, `*_token`, `jwt`, `bearer`,
  `client_secret`, `*_secret`, `api_key`, `authorization`, `local_jwks`,
  `session_ticket_keys`, `credentials`; header entries named
  `Authorization`, `Proxy-Authorization`, `Cookie`, `X-Api-Key` ...; and any
  string that looks like a JWT or a `Bearer` token.

File names (`filename`) are kept: they say where a key lives, not what it is.

The redaction is done in place in the text: only the offending string tokens
change, so every line keeps its number and a ParseError's line still points
at the same place.  `redact_config_dump_text` is what the web app calls to
store the evidence already redacted.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from meshviz.engine.core import safejson

MARKER = "[redacted by meshviz]"

#: What Envoy itself prints in place of private keys.
_ALREADY_REDACTED = frozenset({MARKER, "[redacted]", "W3JlZGFjdGVkXQ==", "", "REDACTED"})

# Keys (snake_case, lower-cased) whose whole value is secret.
_SENSITIVE_KEYS = frozenset(
    {
        "private_key",
        "password",
        "passwd",
        "token",
        "jwt",
        "jwt_token",
        "bearer",
        "bearer_token",
        "client_secret",
        "secret",
        "secret_key",
        "api_key",
        "apikey",
        "authorization",
        "proxy_authorization",
        "local_jwks",
        "session_ticket_keys",
        "hmac_secret",
        "credentials",
        "credential",
        "cookie",
        "x_api_key",
        "x_auth_token",
    }
)
_SENSITIVE_SUFFIXES = ("_token", "_secret", "_password", "_private_key", "_jwt", "_bearer", "_api_key")
_SENSITIVE_PREFIXES = ("jwt_token", "bearer_")

# Keys under which inline data sources are key or certificate material.
_TLS_KEYS = frozenset(
    {
        "tls_context",
        "common_tls_context",
        "upstream_tls_context",
        "downstream_tls_context",
        "tls_certificate",
        "tls_certificates",
        "validation_context",
        "default_validation_context",
        "combined_validation_context",
        "trusted_ca",
        "certificate_chain",
        "ocsp_staple",
        "crl",
        "tls_session_ticket_keys",
        "session_ticket_keys",
        "private_key_provider",
    }
)
_INLINE_KEYS = frozenset({"inline_string", "inline_bytes"})

# Fields kept even inside secret values: plumbing, not content.
_KEEP_KEYS = frozenset({"@type", "type_url", "name", "version_info", "last_updated", "filename", "cluster_name"})

_SECRET_SECTIONS = frozenset({"static_secrets", "dynamic_active_secrets", "dynamic_warming_secrets"})

_SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-amz-security-token",
    }
)

_PEM_PRIVATE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|(?=\")|$)",
    re.DOTALL,
)
_PEM_PRIVATE_HINT = "PRIVATE KEY-----"
# base64("-----BEGIN ") and its two other alignments.
_B64_PEM_PREFIXES = ("LS0tLS1CRUdJTi", "tLS0tLUJFR0lO", "0tLS0tQkVHSU4")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{8,}")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEY_FOLLOWS = re.compile(r"\s*:")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


_SNAKE_CACHE: dict[str, str] = {}
_SENSITIVE_CACHE: dict[str, bool] = {}


def _snake(key: str) -> str:
    k = _SNAKE_CACHE.get(key)
    if k is None:
        k = _CAMEL.sub(r"_\1", key).lower().replace("-", "_")
        if len(_SNAKE_CACHE) < 100_000:
            _SNAKE_CACHE[key] = k
    return k


# key -> (kept, sensitive, inline data, under it is TLS, a secrets section, "key" or "name"), in snake_case
_KEY_INFO: dict[str, tuple[bool, bool, bool, bool, bool, bool]] = {}


def _key_info(key: str) -> tuple[bool, bool, bool, bool, bool, bool]:
    k = _snake(key)
    info = (
        k in _KEEP_KEYS,
        _is_sensitive_key(key),
        k in _INLINE_KEYS,
        k in _TLS_KEYS or k.endswith("tls_context"),
        k in _SECRET_SECTIONS,
        k in ("key", "name"),
    )
    if len(_KEY_INFO) < 100_000:
        _KEY_INFO[key] = info
    return info


def _is_sensitive_key(key: str) -> bool:
    hit = _SENSITIVE_CACHE.get(key)
    if hit is None:
        k = _snake(key)
        hit = k in _SENSITIVE_KEYS or k.endswith(_SENSITIVE_SUFFIXES) or k.startswith(_SENSITIVE_PREFIXES)
        if len(_SENSITIVE_CACHE) < 100_000:
            _SENSITIVE_CACHE[key] = hit
    return hit


def _looks_secret(value: str) -> bool:
    """Value-based rules, applied to every string wherever it is."""
    if _PEM_PRIVATE_HINT in value and "-----BEGIN" in value:
        return True
    if value.startswith(_B64_PEM_PREFIXES) and _b64_private_key(value):
        return True
    if "eyJ" in value and _JWT.search(value):
        return True
    return "earer" in value and _BEARER.search(value) is not None


def _b64_private_key(value: str) -> bool:
    head = value[:4096]
    head = head[: len(head) - len(head) % 4]
    try:
        decoded = base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return False
    return b"PRIVATE KEY" in decoded


# --------------------------------------------------------------------------
# Structural redaction of a parsed dump
# --------------------------------------------------------------------------


class _Walker:
    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.count = 0

    def _take(self, value: str) -> str:
        if value in _ALREADY_REDACTED:
            return value
        self.secrets.add(value)
        self.count += 1
        return MARKER

    def leaf(self, value: str, *, secret: bool) -> str:
        if secret or _looks_secret(value):
            return self._take(value)
        return value

    def walk(self, node: Any, *, secret: bool = False, tls: bool = False) -> Any:
        if isinstance(node, str):
            return self.leaf(node, secret=secret)
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):  # what walk() would do with it, without the call
                    if secret or _looks_secret(item):
                        node[i] = self._take(item)
                elif isinstance(item, (dict, list)):  # numbers, booleans and null stay as they are
                    node[i] = self.walk(item, secret=secret, tls=tls)
            return node
        if not isinstance(node, dict):
            return node
        header_secret = self._is_sensitive_header(node)
        for key, value in node.items():
            info = _KEY_INFO.get(key)
            if info is None:
                info = _key_info(key)
            keep, sensitive, inline, tls_key, section, key_or_name = info
            if keep and isinstance(value, str):
                node[key] = self.leaf(value, secret=False)
                continue
            child_secret = secret or sensitive or (header_secret and not key_or_name) or (tls and inline)
            if section and isinstance(value, list):
                node[key] = [self._secret_entry(item) for item in value]
                continue
            if isinstance(value, str):
                if child_secret or _looks_secret(value):
                    node[key] = self._take(value)
            elif isinstance(value, (dict, list)):
                node[key] = self.walk(value, secret=child_secret, tls=tls or tls_key)
        return node

    def _secret_entry(self, entry: Any) -> Any:
        """A SecretsConfigDump entry: keep names, replace the secret's contents."""
        if not isinstance(entry, dict):
            return self.walk(entry, secret=True)
        for key, value in entry.items():
            if not isinstance(value, str):  # name, version_info, last_updated stay
                entry[key] = self.walk(value, secret=True, tls=True)
        return entry

    @staticmethod
    def _is_sensitive_header(node: dict[str, Any]) -> bool:
        if len(node) < 2:
            return False
        for k in ("key", "name", "header_name"):
            v = node.get(k)
            if isinstance(v, str) and v.lower() in _SENSITIVE_HEADERS:
                return len(node) > 1
        return False


def redact_object(obj: Any) -> int:
    """Redact a parsed dump in place; returns how many strings were replaced."""
    walker = _Walker()
    walker.walk(obj)
    return walker.count


# --------------------------------------------------------------------------
# Text redaction (layout-preserving)
# --------------------------------------------------------------------------


@dataclass
class RedactionResult:
    text: str
    count: int
    #: The parsed (and redacted) JSON, or None when the text is not valid JSON.
    obj: Any = None
    error: json.JSONDecodeError | None = None


def _replace_tokens(text: str, secrets: set[str]) -> tuple[str, int]:
    """Replace every JSON string token (not object keys) whose value is in `secrets`."""
    out: list[str] = []
    last = 0
    count = 0
    marker_token = json.dumps(MARKER)
    for m in _JSON_STRING.finditer(text):
        raw = m.group(0)
        inner = raw[1:-1]
        if "\\" in inner:
            try:
                value = json.loads(raw)
            except ValueError:
                continue
        else:
            value = inner
        if value not in secrets:
            continue
        if _KEY_FOLLOWS.match(text, m.end()):
            continue
        out.append(text[last : m.start()])
        out.append(marker_token)
        last = m.end()
        count += 1
    if not count:
        return text, 0
    out.append(text[last:])
    return "".join(out), count


def _fast_replace(text: str, secrets: set[str]) -> tuple[str, int] | None:
    """Replace secrets found verbatim as `"value"`; None if any is not found that way."""
    count = 0
    marker_token = json.dumps(MARKER)
    for value in sorted(secrets, key=len, reverse=True):
        token = json.dumps(value, ensure_ascii=False)
        if token not in text:
            return None
        pieces = text.split(token)
        rebuilt = [pieces[0]]
        for piece in pieces[1:]:
            if _KEY_FOLLOWS.match(piece):
                rebuilt.append(token)
            else:
                rebuilt.append(marker_token)
                count += 1
            rebuilt.append(piece)
        text = "".join(rebuilt)
    return text, count


def replace_secrets(text: str, secrets: set[str]) -> tuple[str, int]:
    """Replace every string value (not object keys) equal to one of `secrets` by the marker, in place in the text;
    returns the text and how many values were replaced."""
    fast = _fast_replace(text, secrets)
    return _replace_tokens(text, secrets) if fast is None else fast


def _regex_redact(text: str) -> tuple[str, int]:
    """For text that is not valid JSON: pattern-based rules only, keeping line numbers."""
    count = 0

    def pem(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return MARKER + "\n" * m.group(0).count("\n")

    text = _PEM_PRIVATE.sub(pem, text)
    out: list[str] = []
    last = 0
    for m in _JSON_STRING.finditer(text):
        raw = m.group(0)
        inner = raw[1:-1]
        if _KEY_FOLLOWS.match(text, m.end()) or inner in _ALREADY_REDACTED or inner.startswith(MARKER):
            continue
        secret = _looks_secret(inner)
        if not secret:
            km = _KEY_BEFORE.search(text[max(0, m.start() - 200) : m.start()])
            secret = km is not None and _is_sensitive_key(km.group(1))
        if secret:
            out.append(text[last : m.start()])
            out.append(json.dumps(MARKER) + "\n" * raw.count("\n"))
            last = m.end()
            count += 1
    out.append(text[last:])
    text = "".join(out)

    def bare(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return MARKER

    text = _JWT.sub(bare, text)
    text = _BEARER.sub(bare, text)
    return text, count


_KEY_BEFORE = re.compile(r'"([A-Za-z0-9_@.-]+)"\s*:\s*$')


def redact(text: str) -> RedactionResult:
    """Redact `text`; also returns the parsed, redacted JSON when the text is JSON."""
    try:
        obj = safejson.loads(text)
    except json.JSONDecodeError as exc:
        redacted, count = _regex_redact(text)
        return RedactionResult(redacted, count, None, exc)
    walker = _Walker()
    walker.walk(obj)
    if not walker.count:
        if _PEM_PRIVATE_HINT in text:  # e.g. inside an object key: be safe
            redacted, count = _regex_redact(text)
            if count:
                inner = redact(redacted)
                return RedactionResult(inner.text, inner.count + count, inner.obj, inner.error)
        return RedactionResult(text, 0, obj, None)
    redacted, count = replace_secrets(text, walker.secrets)
    # Belt and braces: what we store must come out clean when read back.
    try:
        again = safejson.loads(redacted)  # same as json.loads: the bounds held for `text`
    except json.JSONDecodeError:
        again = None
    # Read back equal to the walked object, it is clean: the walk is idempotent (what it replaced is the marker, the
    # keys that make a value secret are unchanged, and no value it left can look like a sensitive header name), so
    # walking it again - a second pass over a big dump - is needed only when the read-back differs.
    if again is None or (again != obj and redact_object(again)):
        redacted = json.dumps(obj, indent=1)
        again = json.loads(redacted)
        count = walker.count
    return RedactionResult(redacted, count, again, None)
