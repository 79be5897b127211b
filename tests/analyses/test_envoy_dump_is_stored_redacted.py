"""Secrets in an uploaded Envoy config dump never reach the database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from meshviz.analyses.models import Analysis
from meshviz.engine.envoy import MARKER

from .helpers import ENVOY_REDIRECT

pytestmark = pytest.mark.django_db
PEM_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplantedKEYmaterial0123456789\n-----END RSA PRIVATE KEY-----\n"
)


def test_private_key_in_the_dump_is_replaced_before_storage(create: Callable[..., Any]) -> None:
    dump = json.loads(ENVOY_REDIRECT)
    dump["configs"].append(
        {
            "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
            "dynamic_active_secrets": [
                {"name": "default", "secret": {"tls_certificate": {"private_key": {"inline_string": PEM_KEY}}}}
            ],
        }
    )
    response = create(envoy_config_dump=json.dumps(dump, indent=2))
    assert response.status_code == 201, response.content
    stored = Analysis.objects.get(slug=response.json()["slug"])
    assert "plantedKEYmaterial" not in stored.envoy_config_dump
    assert MARKER in stored.envoy_config_dump
    assert stored.envoy_redactions >= 1
    assert stored.state == "done"
