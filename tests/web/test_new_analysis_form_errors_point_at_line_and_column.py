"""The new-analysis form: errors inline at the input with line and column; valid evidence goes to the permalink."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from meshviz.analyses.models import Analysis
from tests.analyses.helpers import APP_PORT, ENVOY_REDIRECT, POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def test_bad_iptables_and_ip_rule_are_shown_at_their_line_and_column(client: Client) -> None:
    response = client.post(
        "/new/",
        {
            "pod_ip": POD_IP,
            "iptables": "*nat\r\n-A FOO -j BAR --bad\r\nCOMMIT\r\n",
            "ip_rule": "0:\tfrom all lookup local\ngarbage here\n",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "the evidence has 2 errors" in page
    iptables = page[page.index('id="field-iptables"') : page.index('id="field-ip_rule"')]
    assert "line 2, column 15" in iptables and "unknown option `--bad&#x27;" in iptables
    assert "2 | -A FOO -j BAR --bad" in iptables
    assert "\n" + " " * (len("2 | ") + 14) + "^" in iptables  # the caret under column 15
    ip_rule = page[page.index('id="field-ip_rule"') : page.index('id="field-ip_route"')]
    assert "line 2, column 1" in ip_rule and "garbage" in ip_rule
    # what was pasted is kept
    assert "-A FOO -j BAR --bad" in page
    assert not Analysis.objects.exists()


def test_missing_iptables_and_bad_pod_ip_and_ports(client: Client) -> None:
    response = client.post("/new/", {"pod_ip": "not-an-ip", "app_ports": "80, 70000", "iptables": ""})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid IPv4 or IPv6 address" in page
    assert "not a port (1-65535): &#x27;70000&#x27;" in page

    response = client.post("/new/", {"pod_ip": POD_IP, "iptables": "  "})
    page = response.content.decode()
    iptables = page[page.index('id="field-iptables"') : page.index('id="field-ip_rule"')]
    assert "iptables evidence is required" in iptables


def test_uploaded_non_utf8_is_refused_at_its_input(client: Client) -> None:
    response = client.post(
        "/new/",
        {"pod_ip": POD_IP, "iptables_file": SimpleUploadedFile("rules.txt", b"*nat\n\xff\xfe\nCOMMIT\n")},
    )
    assert response.status_code == 400
    assert "not UTF-8 text" in response.content.decode()


def test_csrf_is_enforced(django_capture_on_commit_callbacks: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/new/", {"pod_ip": POD_IP, "iptables": REDIRECT_RULES}).status_code == 403
    assert strict.post("/new/example/redirect-app-sees-127.0.0.6/").status_code == 403


def test_valid_upload_redirects_to_the_permalink(client: Client, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/new/",
            {
                "pod_ip": POD_IP,
                "app_ports": str(APP_PORT),
                "iptables_file": SimpleUploadedFile("iptables-save.txt", REDIRECT_RULES.encode()),
                "envoy_config_dump": ENVOY_REDIRECT,
            },
        )
    assert response.status_code == 302
    analysis = Analysis.objects.get()
    assert response["Location"] == f"/a/{analysis.slug}/"
    assert analysis.app_ports == [APP_PORT]
    assert analysis.state == "done"
    assert "127.0.0.6" in client.get(response["Location"]).content.decode()
