"""An Envoy dump nested 2,000+ levels deep is a 400 naming the envoy source, line and column."""

from __future__ import annotations

from typing import Any

import pytest

from meshviz.analyses.models import Analysis
from tests.analyses.helpers import evidence_payload
from tests.hostile.conftest import json_4xx

pytestmark = pytest.mark.django_db


def test_deeply_nested_dump_is_400(post_json: Any) -> None:
    dump = '{"configs": ' + "[" * 3000 + "]" * 3000 + "}"
    (err,) = json_4xx(post_json("/api/v1/analyses/", evidence_payload(envoy_config_dump=dump)))
    assert err["source"] == "envoy" and err["line"] == 1 and err["column"] > 0
    assert "nested deeper than" in err["message"]
    assert not Analysis.objects.exists()
