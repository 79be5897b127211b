"""The dump's secrets (private keys, inline certificate data, tokens) are replaced before config_dump.json is
written, and nothing of the dump is printed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from meshviz.engine.envoy.parser import parse_config_dump
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS

from .collect_sh import run_collect_sh

KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secretkeymaterial\n-----END PRIVATE KEY-----\n"
KEY_B64 = base64.b64encode(KEY_PEM.encode()).decode()
CERT_B64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIC0certificatebody\n-----END CERTIFICATE-----\n").decode()
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzcGlmZmUifQ.c2lnbmF0dXJlLXNlY3JldA"


def with_secrets(dump: str) -> str:
    obj = json.loads(dump)
    obj["configs"].append(
        {
            "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
            "dynamic_active_secrets": [
                {
                    "name": "default",
                    "secret": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                        "name": "default",
                        "tls_certificate": {
                            "certificate_chain": {"inline_bytes": CERT_B64},
                            "private_key": {"inline_bytes": KEY_B64},
                            "password": {"inline_string": "hunter2-password"},
                        },
                    },
                }
            ],
        }
    )
    obj["configs"][0]["bootstrap"]["node"]["metadata"]["token"] = TOKEN
    return json.dumps(obj, indent=2)


@pytest.mark.parametrize("how", ["exec", "capture container"])
def test_secrets_are_dropped_before_writing(tls_apiserver: FakeApiServer, tmp_path: Path, how: str) -> None:
    data = tls_apiserver.scenario.data[(REDIRECT_NS, POD)]
    data.config_dump = with_secrets(data.config_dump)
    if how == "capture container":
        tls_apiserver.scenario.forbid("create", "pods", "exec")

    run = run_collect_sh(tls_apiserver, tmp_path, REDIRECT_NS, POD)

    dump = run.member("config_dump.json")
    for secret in (KEY_B64, CERT_B64, "hunter2-password", TOKEN, "secretkeymaterial"):
        assert secret not in dump
        assert secret not in run.stdout and secret not in run.stderr
    assert "[redacted by collect.sh]" in dump
    parsed = parse_config_dump(dump, source="config_dump.json")
    assert not parsed.errors and parsed.config.listeners  # still a dump meshviz reads
