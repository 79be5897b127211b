"""Issue 15: `.gz` evidence files and `Content-Encoding: gzip` bodies are accepted; a gzip bomb is a 413 at the cap,
corrupt or truncated gzip a 400 naming the input; uploads are read in pieces, never whole."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from meshviz.web import uploads

from .helpers import ENVOY_REDIRECT, POD_IP, REDIRECT_RULES, evidence_payload

pytestmark = pytest.mark.django_db
URL = "/api/v1/analyses/"


def errors_of(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    return list(response.json()["errors"])


def test_gz_evidence_files_are_gunzipped(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    files = {
        "iptables": SimpleUploadedFile("iptables-save.txt.gz", gzip.compress(REDIRECT_RULES.encode())),
        "envoy_config_dump": SimpleUploadedFile("config_dump.json.gz", gzip.compress(ENVOY_REDIRECT.encode())),
        "pod_ip": POD_IP,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(URL, files, format="multipart")
    assert response.status_code == 201, response.content
    analysis = Analysis.objects.get(slug=response.json()["slug"])
    assert analysis.iptables == REDIRECT_RULES
    assert analysis.state == Analysis.State.DONE and analysis.interception_mode == "REDIRECT"


def test_gzip_is_recognised_by_its_magic_bytes_whatever_the_name(api: APIClient) -> None:
    files = {"iptables": SimpleUploadedFile("rules", gzip.compress(REDIRECT_RULES.encode())), "pod_ip": POD_IP}
    response = api.post(URL, files, format="multipart")
    assert response.status_code == 201, response.content
    assert Analysis.objects.get(slug=response.json()["slug"]).iptables == REDIRECT_RULES


def test_content_encoding_gzip_body_is_decompressed(api: APIClient) -> None:
    body = gzip.compress(json.dumps(evidence_payload()).encode())
    response = api.generic("POST", URL, body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 201, response.content
    assert Analysis.objects.get(slug=response.json()["slug"]).pod_name == "geo-7d9f"


def test_corrupt_gz_file_is_400_naming_the_input(api: APIClient) -> None:
    broken = bytearray(gzip.compress(REDIRECT_RULES.encode()))
    broken[20:40] = b"\xff" * 20
    files = {"iptables": SimpleUploadedFile("iptables.gz", bytes(broken)), "pod_ip": POD_IP}
    (err,) = errors_of(api.post(URL, files, format="multipart"), 400)
    assert err["source"] == "iptables" and "gzip" in err["message"]


def test_truncated_gz_file_is_400(api: APIClient) -> None:
    cut = gzip.compress(REDIRECT_RULES.encode())[:-12]
    files = {"iptables": SimpleUploadedFile("iptables.gz", cut), "pod_ip": POD_IP}
    (err,) = errors_of(api.post(URL, files, format="multipart"), 400)
    assert err["source"] == "iptables" and "ends early" in err["message"]


def test_a_gz_name_on_plain_text_is_400_not_gzip(api: APIClient) -> None:
    files = {"iptables": SimpleUploadedFile("iptables.gz", REDIRECT_RULES.encode()), "pod_ip": POD_IP}
    (err,) = errors_of(api.post(URL, files, format="multipart"), 400)
    assert "not gzip" in err["message"]


def test_corrupt_gzip_body_is_400(api: APIClient) -> None:
    response = api.generic(
        "POST",
        URL,
        b"\x1f\x8b\x08\x00garbage-not-deflate",
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    (err,) = errors_of(response, 400)
    assert err["source"] == "the request body" and "gzip" in err["message"]
    assert Analysis.objects.count() == 0


def test_unknown_content_encoding_is_400(api: APIClient) -> None:
    response = api.generic("POST", URL, b"{}", content_type="application/json", HTTP_CONTENT_ENCODING="br")
    (err,) = errors_of(response, 400)
    assert "Content-Encoding" in err["message"]


@override_settings(MESHVIZ_MAX_UPLOAD_BYTES=64 * 1024)
def test_gz_file_bomb_is_413_at_the_cap(api: APIClient) -> None:
    bomb = gzip.compress(b"\x00" * (20 * 1024 * 1024))  # 20 MB of zeros in about 20 KB
    assert len(bomb) < 64 * 1024
    files = {"iptables": SimpleUploadedFile("iptables.gz", bomb), "pod_ip": POD_IP}
    (err,) = errors_of(api.post(URL, files, format="multipart"), 413)
    assert err["source"] == "iptables" and "decompresses to more than the 65,536-byte limit" in err["message"]


@override_settings(MESHVIZ_MAX_REQUEST_BYTES=64 * 1024)
def test_gzip_body_bomb_is_413_at_the_cap(api: APIClient) -> None:
    bomb = gzip.compress(b" " * (20 * 1024 * 1024))
    response = api.generic("POST", URL, bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    (err,) = errors_of(response, 413)
    assert "decompresses to more than the 65,536-byte limit" in err["message"]


def test_concatenated_gzip_members_are_one_file() -> None:
    data = gzip.compress(b"first line\n") + gzip.compress(b"second line\n")
    assert uploads.read_text(SimpleUploadedFile("x.gz", data), "iptables") == "first line\nsecond line\n"


class _Recording(io.BytesIO):
    """A file that records how much each read asked for."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name
        self.size = len(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


@pytest.mark.parametrize("compress", [False, True])
def test_uploads_are_read_in_pieces_never_whole(compress: bool) -> None:
    text = "x" * (3 * uploads.CHUNK + 17) + "é\n"
    raw = text.encode()
    f = _Recording(gzip.compress(raw) if compress else raw, "iptables.gz" if compress else "iptables")
    assert uploads.read_text(f, "iptables") == text
    assert f.asked and all(0 < size <= uploads.CHUNK for size in f.asked)


def test_a_multibyte_character_split_between_pieces_decodes() -> None:
    text = "a" * (uploads.CHUNK - 1) + "é" + "z"  # é straddles the first piece's end
    assert uploads.read_text(_Recording(text.encode(), "rules"), "iptables") == text


def test_new_analysis_page_takes_a_gz_file(user: Any, django_capture_on_commit_callbacks: Any) -> None:
    client = Client()
    client.force_login(user)
    upload = io.BytesIO(gzip.compress(REDIRECT_RULES.encode()))
    upload.name = "iptables-save.txt.gz"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/new/", {"iptables_file": upload, "pod_ip": POD_IP, "app_ports": "8083"})
    assert response.status_code == 302, response.content[:2000]
    assert Analysis.objects.get().iptables == REDIRECT_RULES


@override_settings(MESHVIZ_MAX_UPLOAD_BYTES=64 * 1024)
def test_new_analysis_page_names_a_gz_bomb(user: Any) -> None:
    client = Client()
    client.force_login(user)
    upload = io.BytesIO(gzip.compress(b"\x00" * (20 * 1024 * 1024)))
    upload.name = "iptables-save.txt.gz"
    response = client.post("/new/", {"iptables_file": upload, "pod_ip": POD_IP})
    assert response.status_code == 400
    assert "decompresses to more than the 65,536-byte limit" in response.content.decode()
    assert Analysis.objects.count() == 0
