"""`manage.py demo_user` (run by `make run`) prints a login that works, with a new password every run."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def demo_login() -> tuple[str, str]:
    out = StringIO()
    call_command("demo_user", stdout=out)
    match = re.search(r"demo login: (\S+) / (\S+)", out.getvalue())
    assert match, out.getvalue()
    return match.group(1), match.group(2)


def test_printed_login_opens_the_account_page() -> None:
    username, password = demo_login()
    client = Client()

    response = client.post("/login/", {"username": username, "password": password})

    assert response.status_code == 302
    assert client.get("/account/").status_code == 200


def test_each_run_sets_a_new_password_and_the_old_one_stops_working() -> None:
    username, first = demo_login()
    _, second = demo_login()

    assert first != second
    assert not Client().login(username=username, password=first)
    assert Client().login(username=username, password=second)
