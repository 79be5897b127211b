"""MESHVIZ_HTTPS=true sets HSTS, the SSL redirect, Secure cookies and the proxy header; CSRF_TRUSTED_ORIGINS comes
from the environment."""

from __future__ import annotations

from tests.deploy.production import PRODUCTION_ENV, run_python

PRINT = (
    "from django.conf import settings as s\n"
    "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SESSION_COOKIE_SECURE,"
    " s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, s.CSRF_TRUSTED_ORIGINS)"
)


def test_https_on() -> None:
    out = run_python(PRINT, **PRODUCTION_ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "True 31536000 True True True ('HTTP_X_FORWARDED_PROTO', 'https') ['https://meshviz.example.com']"
    )


def test_https_off_by_default() -> None:
    out = run_python(PRINT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False 0 False False False None []"


def test_plain_http_is_redirected_and_hsts_sent_behind_the_proxy() -> None:
    code = (
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='meshviz.example.com')\n"
        "r = c.get('/api/v1/analyses/')\n"
        "print(r.status_code, r['Location'])\n"
        "r = c.get('/api/v1/analyses/', HTTP_X_FORWARDED_PROTO='https')\n"
        "print(r.status_code, r['Strict-Transport-Security'])\n"
    )
    out = run_python(code, **PRODUCTION_ENV)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first == "301 https://meshviz.example.com/api/v1/analyses/"
    assert second == "401 max-age=31536000; includeSubDomains; preload"
