"""Results larger than MESHVIZ_MAX_RESULT_BYTES are a failure that says so, and nothing is stored."""

from __future__ import annotations

import pytest
from django.test import override_settings

from meshviz.analyses import services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import analyse
from tests.analyses.helpers import POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


@override_settings(MESHVIZ_MAX_RESULT_BYTES=2000)
def test_result_over_the_limit_fails_naming_the_setting() -> None:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    assert analyse.apply(args=[a.pk]).get() == "failed"
    a.refresh_from_db()
    assert a.state == Analysis.State.FAILED and a.results is None
    assert a.error.startswith("ResultTooLarge: the results take")
    assert "MESHVIZ_MAX_RESULT_BYTES" in a.error and "2,000-byte" in a.error
