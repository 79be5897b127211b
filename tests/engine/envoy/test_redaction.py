"""Secrets never survive: the redacted text keeps its structure and line numbers, and the parser only sees it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from meshviz.engine.envoy import MARKER, parse_config_dump, redact_config_dump_text

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"

PEM_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplantedKEYmaterial0123456789\n-----END RSA PRIVATE KEY-----\n"
)
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIDplantedCERTchain0123456789\n-----END CERTIFICATE-----\n"
B64_KEY = base64.b64encode(PEM_KEY.encode()).decode()
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlcGxhbnRlZA"
SECRETS = {
    "key": PEM_KEY,
    "cert": PEM_CERT,
    "b64": B64_KEY,
    "jwt": JWT,
    "access_token": "ya29.planted-access-token",
    "bearer": "Bearer plantedBearerToken123",
    "basic": "Basic cGxhbnRlZDpwYXNzd29yZA==",
    "password": "planted-hunter2",
    "client_secret": "planted-oauth-client-secret",
    "jwks": '{"keys":[{"kty":"oct","k":"cGxhbnRlZGhtYWM"}]}',
    "camel": "planted-camel-case-key",
    "token": "planted-plain-token",
    "cookie": "session=planted-cookie",
}


def planted_dump() -> dict[str, Any]:
    tls = {
        "common_tls_context": {
            "tls_certificates": [
                {
                    "certificate_chain": {"inline_string": SECRETS["cert"]},
                    "private_key": {"inline_string": SECRETS["key"]},
                },
                {
                    "certificate_chain": {"filename": "/etc/certs/cert-chain.pem"},
                    "private_key": {"filename": "/etc/certs/key.pem"},
                },
            ]
        }
    }
    return {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                "bootstrap": {
                    "node": {
                        "id": "sidecar~10.0.0.5~app.ns~ns.svc.cluster.local",
                        "metadata": {"INTERCEPTION_MODE": "REDIRECT"},
                    },
                    "static_resources": {
                        "clusters": [
                            {
                                "name": "xds-grpc",
                                "type": "STATIC",
                                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
                            }
                        ]
                    },
                    "dynamic_resources": {
                        "ads_config": {
                            "grpc_services": [
                                {"google_grpc": {"call_credentials": [{"access_token": SECRETS["access_token"]}]}}
                            ]
                        }
                    },
                },
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "static_clusters": [
                    {
                        "cluster": {
                            "name": "oauth",
                            "type": "STRICT_DNS",
                            "metadata": {
                                "filter_metadata": {
                                    "oauth": {"clientSecret": SECRETS["client_secret"], "password": SECRETS["password"]}
                                }
                            },
                            "transportSocket": {
                                "name": "tls",
                                "typedConfig": {
                                    "commonTlsContext": {
                                        "tlsCertificates": [{"privateKey": {"inlineString": SECRETS["camel"]}}]
                                    }
                                },
                            },
                        }
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": [
                    {
                        "route_config": {
                            "name": "8080",
                            "request_headers_to_add": [
                                {"header": {"key": "Authorization", "value": SECRETS["bearer"]}}
                            ],
                            "virtual_hosts": [
                                {
                                    "name": "vh",
                                    "domains": ["*"],
                                    "routes": [
                                        {
                                            "match": {
                                                "prefix": "/",
                                                "headers": [
                                                    {
                                                        "name": "authorization",
                                                        "string_match": {"exact": SECRETS["basic"]},
                                                    },
                                                    {"name": "cookie", "exact_match": SECRETS["cookie"]},
                                                ],
                                            },
                                            "route": {"cluster": "c"},
                                            "decorator": {"operation": SECRETS["jwt"]},
                                            "typed_per_filter_config": {
                                                "jwt": {
                                                    "token": SECRETS["token"],
                                                    "local_jwks": {"inline_string": SECRETS["jwks"]},
                                                }
                                            },
                                        }
                                    ],
                                }
                            ],
                        }
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                "dynamic_active_secrets": [
                    {
                        "name": "default",
                        "version_info": "2025-01-01T00:00:00Z",
                        "last_updated": "2025-01-01T00:00:00Z",
                        "secret": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                            "name": "default",
                            "tls_certificate": {
                                "certificate_chain": {"inline_bytes": base64.b64encode(PEM_CERT.encode()).decode()},
                                "private_key": {"inline_bytes": SECRETS["b64"]},
                            },
                        },
                    }
                ],
            },
        ]
    }


def paths(node: Any, prefix: str = "") -> set[str]:
    out = {prefix}
    if isinstance(node, dict):
        for k, v in node.items():
            out |= paths(v, f"{prefix}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out |= paths(v, f"{prefix}[{i}]")
    return out


def assert_clean(text: str) -> None:
    for what, secret in SECRETS.items():
        for probe in {secret, json.dumps(secret)[1:-1], secret.split("\n")[1] if "\n" in secret else secret}:
            assert probe not in text, f"{what} survived redaction"
    assert "PRIVATE KEY-----" not in text


def test_planted_secrets_are_removed_and_structure_kept() -> None:
    original = planted_dump()
    text = json.dumps(original, indent=2)
    redacted, count = redact_config_dump_text(text)
    assert_clean(redacted)
    after = json.loads(redacted)
    assert paths(after) == paths(original)  # every key is still there
    assert len(redacted.splitlines()) == len(text.splitlines())  # line numbers are preserved
    assert count == redacted.count(MARKER) == 14
    # Names, versions and file names are kept.
    secret_entry = after["configs"][3]["dynamic_active_secrets"][0]
    assert secret_entry["name"] == "default" and secret_entry["secret"]["name"] == "default"
    assert secret_entry["version_info"] == "2025-01-01T00:00:00Z"
    certs = after["configs"][0]["bootstrap"]["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
    second = certs["common_tls_context"]["tls_certificates"][1]
    assert second["private_key"]["filename"] == "/etc/certs/key.pem"
    route = after["configs"][2]["dynamic_route_configs"][0]["route_config"]
    assert route["request_headers_to_add"][0]["header"] == {"key": "Authorization", "value": MARKER}
    assert route["virtual_hosts"][0]["routes"][0]["route"] == {"cluster": "c"}


def test_redaction_only_touches_secret_values() -> None:
    text = json.dumps(planted_dump(), indent=2)
    redacted, _ = redact_config_dump_text(text)
    changed = [(a, b) for a, b in zip(text.splitlines(), redacted.splitlines(), strict=True) if a != b]
    assert changed and all(MARKER in b for _a, b in changed)


def test_compact_json_is_redacted_in_place() -> None:
    text = json.dumps(planted_dump())
    redacted, count = redact_config_dump_text(text)
    assert "\n" not in redacted and count == 14
    assert_clean(redacted)


def test_dump_without_secrets_is_returned_unchanged() -> None:
    text = (FIXTURES / "istio-1.4-sidecar-productpage.json").read_text()
    assert redact_config_dump_text(text) == (text, 0)


def test_envoys_own_redaction_marker_is_not_counted() -> None:
    text = json.dumps({"private_key": {"inline_string": "[redacted]"}, "inline_bytes": "W3JlZGFjdGVkXQ=="})
    assert redact_config_dump_text(text) == (text, 0)


def test_real_dump_secrets_section_is_redacted() -> None:
    text = (FIXTURES / "istio-1.18-sidecar-geo-virtualInbound-error-state.json").read_text()
    redacted, count = redact_config_dump_text(text)
    assert count == 2  # the two certificate chains in SecretsConfigDump (Envoy already redacted the keys)
    assert "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t" not in redacted
    assert len(redacted.splitlines()) == len(text.splitlines())


def test_malformed_json_gets_pattern_redaction_keeping_lines() -> None:
    text = (
        '{\n "password": "planted-hunter2",\n "k": "'
        + PEM_KEY.replace("\n", "\\n")
        + '",\n "raw": \n'
        + PEM_KEY
        + " oops\n"
    )
    redacted, count = redact_config_dump_text(text)
    assert count >= 3
    assert "planted-hunter2" not in redacted and "PRIVATE KEY-----" not in redacted
    assert "plantedKEYmaterial" not in redacted
    assert len(redacted.splitlines()) == len(text.splitlines())


def test_parser_never_keeps_a_secret() -> None:
    # A compact dump with a structural error: the error's text is an excerpt of the (single) line.
    dump = planted_dump()
    dump["configs"][1]["static_clusters"][0]["cluster"]["upstream_bind_config"] = {
        "source_address": {"address": "1.2.3.4", "port_value": "x"}
    }
    result = parse_config_dump(json.dumps(dump), "planted.json")
    assert result.config.redactions == 14
    assert any("redacted" in w.message for w in result.warnings)
    assert result.errors and "port_value" in result.errors[0].message
    kept = [e.text for e in result.errors] + [w.text for w in result.warnings] + [str(result.config)]
    for text in kept:
        assert_clean(text)


def test_malformed_json_error_text_is_redacted() -> None:
    text = '{"configs": [{"password": "planted-hunter2", "private_key": "' + PEM_KEY.replace("\n", "\\n") + '" oops]}'
    result = parse_config_dump(text)
    assert len(result.errors) == 1
    assert_clean(result.errors[0].text)
    assert result.config.redactions == 2
