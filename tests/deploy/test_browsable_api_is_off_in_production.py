"""The DRF browsable API (HTML forms) is off with DEBUG false: a browser asking for HTML gets JSON."""

from __future__ import annotations

from tests.deploy.production import PRODUCTION_ENV, run_python

CODE = (
    "from django.test import Client\n"
    "r = Client(HTTP_HOST='meshviz.example.com').get('/api/v1/analyses/', HTTP_ACCEPT='text/html',"
    " HTTP_X_FORWARDED_PROTO='https')\n"
    "print(r.status_code, r['Content-Type'])\n"
)


def test_html_is_not_offered_in_production() -> None:
    out = run_python(CODE, **PRODUCTION_ENV)
    assert out.returncode == 0, out.stderr
    status, content_type = out.stdout.split()
    assert status in ("401", "406") and content_type.startswith("application/json")


def test_browsable_api_stays_in_development() -> None:
    out = run_python(
        CODE.replace("HTTP_X_FORWARDED_PROTO='https'", "HTTP_X_FORWARDED_PROTO='http'"),
        DEBUG="true",
        ALLOWED_HOSTS="meshviz.example.com",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1].startswith("text/html")
