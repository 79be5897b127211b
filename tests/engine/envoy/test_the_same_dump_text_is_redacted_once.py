"""Redaction is a pure function of the text: the same dump uploaded again (a chatops bot re-checking a pod) is walked
once (indexed and redacted, `envoy.lazy`) and gets the same redacted text and count; a different text is redacted
afresh; big texts are not kept."""

from __future__ import annotations

import json

import pytest

from meshviz.engine.core.bounded import BoundedCache
from meshviz.engine.envoy import lazy as redact_module
from meshviz.engine.envoy.lazy import redact_config_dump_text
from meshviz.engine.envoy.redact import MARKER

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def _fresh() -> BoundedCache[str, tuple[str, int]]:
    return BoundedCache(lambda: (redact_module._KEPT, 1 << 40), lambda text, _r: len(text))


def _dump(n: int) -> str:
    secret = {"name": f"default-{n}", "tls_certificate": {"private_key": {"inline_string": KEY}}}
    return json.dumps(
        {
            "configs": [
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                    "dynamic_active_secrets": [{"name": f"s{n}", "secret": secret}],
                }
            ]
        }
    )


def test_a_dump_uploaded_again_is_walked_once_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = redact_module.index_config_dump
    monkeypatch.setattr(redact_module, "index_config_dump", lambda t: calls.append(t) or real(t))
    monkeypatch.setattr(redact_module, "_recent", _fresh())
    text = _dump(1)
    first = redact_config_dump_text(text)
    again = redact_config_dump_text(str(text))  # an equal text, another object (the next upload)
    assert first == again
    assert first[1] == 1 and MARKER in first[0] and "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in first[0]
    assert len(calls) == 1
    other = redact_config_dump_text(_dump(2))
    assert other[1] == 1 and len(calls) == 2


def test_texts_beyond_the_size_kept_are_redacted_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = redact_module.index_config_dump
    monkeypatch.setattr(redact_module, "index_config_dump", lambda t: calls.append(t) or real(t))
    monkeypatch.setattr(redact_module, "_recent", _fresh())
    monkeypatch.setattr(redact_module, "_KEPT_CHARS", 10)
    text = _dump(3)
    assert redact_config_dump_text(text) == redact_config_dump_text(text)
    assert len(calls) == 2 and redact_module._recent.info()["entries"] == 0


def test_only_the_last_few_texts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_recent", _fresh())
    for n in range(redact_module._KEPT + 5):
        redact_config_dump_text(_dump(100 + n))
    assert redact_module._recent.info()["entries"] == redact_module._KEPT
