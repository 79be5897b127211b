"""The account page's audit log is one section of the page body: not repeated, not inside the <title> or <head>."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_audit_log_is_one_section_in_the_body(user: User) -> None:
    client = Client()
    client.force_login(user)
    html = client.get("/account/").content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    assert title is not None and title.group(1).strip() == "meshviz: your account"
    head, _, body = html.partition("</head>")
    assert 'id="audit-log"' not in head
    assert body.count('id="audit-log"') == 1
