"""Every bad upload gets a JSON 4xx naming the source, line and column; never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from meshviz.analyses.errors import EvidenceTooLarge
from meshviz.analyses.models import Analysis
from meshviz.analyses.serializers import AnalysisCreateSerializer

from .helpers import ENVOY_REDIRECT, POD_IP, REDIRECT_RULES, evidence_payload

pytestmark = pytest.mark.django_db
URL = "/api/v1/analyses/"


def errors_of(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert errors
    for e in errors:
        assert set(e) == {"source", "line", "column", "text", "message"}
    return errors


def test_bad_iptables_line_is_400_with_line_and_column(api: APIClient) -> None:
    bad = REDIRECT_RULES.replace("COMMIT", "-A PREROUTING -j BOGUS --frob\nCOMMIT", 1)
    line = bad.splitlines().index("-A PREROUTING -j BOGUS --frob") + 1
    (err,) = errors_of(api.post(URL, evidence_payload(iptables=bad), format="json"), 400)
    assert err["source"] == "iptables" and err["line"] == line and err["column"] > 0
    assert err["text"] == "-A PREROUTING -j BOGUS --frob"
    assert not Analysis.objects.exists()


def test_missing_iptables_and_bad_pod_ip_are_400(api: APIClient) -> None:
    payload = evidence_payload(pod_ip="not-an-ip")
    del payload["iptables"]
    errs = errors_of(api.post(URL, payload, format="json"), 400)
    assert {e["source"] for e in errs} == {"iptables", "pod_ip"}


def test_truncated_envoy_dump_is_400_with_its_line(api: APIClient) -> None:
    lines = ENVOY_REDIRECT.splitlines()
    truncated = "\n".join(lines[:40])
    (err,) = errors_of(api.post(URL, evidence_payload(envoy_config_dump=truncated), format="json"), 400)
    assert err["source"] == "envoy"
    assert 40 <= err["line"] <= 41
    assert "not valid JSON" in err["message"]


def test_binary_junk_file_is_400_not_utf8(api: APIClient) -> None:
    junk = SimpleUploadedFile("iptables.bin", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01binary")
    response = api.post(URL, {"iptables": junk, "pod_ip": POD_IP}, format="multipart")
    (err,) = errors_of(response, 400)
    assert err["source"] == "iptables" and "not UTF-8 text" in err["message"]


def test_nul_bytes_in_pasted_text_are_400(api: APIClient) -> None:
    (err,) = errors_of(api.post(URL, evidence_payload(sysctl="net.ipv4.ip_forward = 1\x00\x00"), format="json"), 400)
    assert err["source"] == "sysctl" and "NUL" in err["message"]


def test_body_that_is_not_json_is_400(api: APIClient) -> None:
    response = api.post(URL, b'{"iptables": "*nat\n', content_type="application/json")
    (err,) = errors_of(response, 400)
    assert "JSON parse error" in err["message"]


@override_settings(MESHVIZ_MAX_UPLOAD_BYTES=4096)
def test_upload_over_the_limit_is_413(api: APIClient) -> None:
    big = SimpleUploadedFile("iptables-save.txt", REDIRECT_RULES.encode() * 4)
    (err,) = errors_of(api.post(URL, {"iptables": big, "pod_ip": POD_IP}, format="multipart"), 413)
    assert "MESHVIZ_MAX_UPLOAD_BYTES" in err["message"]
    (err,) = errors_of(api.post(URL, evidence_payload(), format="json"), 413)
    assert "4096" in err["message"]


@override_settings(MESHVIZ_MAX_UPLOAD_BYTES=4096)
def test_one_evidence_text_over_the_limit_is_413_whatever_the_content_length_says() -> None:
    # A chunked request carries no Content-Length: each evidence text is checked on its own too.
    ser = AnalysisCreateSerializer(data={"iptables": "x" * 4097, "pod_ip": POD_IP})
    with pytest.raises(EvidenceTooLarge, match="iptables is larger than the 4096-byte limit"):
        ser.is_valid()


def test_bad_connection_is_400(api: APIClient) -> None:
    payload = evidence_payload(connections=[{"direction": "inbound", "client": "nowhere", "port": 8083}])
    (err,) = errors_of(api.post(URL, payload, format="json"), 400)
    assert err["source"] == "connections[0].client"


def test_unknown_slug_is_404_json(api: APIClient) -> None:
    (err,) = errors_of(api.get(f"{URL}{'A' * 30}/"), 404)
    assert "no analysis" in err["message"]
