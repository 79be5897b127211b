"""The documented production environment (README, docs/deploy.md), for tests that start a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-test-key-not-used-anywhere-0123456789",
    "ALLOWED_HOSTS": "meshviz.example.com",
    "MESHVIZ_HTTPS": "true",
    "CSRF_TRUSTED_ORIGINS": "https://meshviz.example.com",
    "MESHVIZ_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter with Django set up under `env` (plus PATH and the test database)."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_SETTINGS_MODULE": "meshviz.settings"}
    if os.environ.get("DATABASE_URL"):
        base["DATABASE_URL"] = os.environ["DATABASE_URL"]
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if os.environ.get("DATABASE_URL"):
        base["DATABASE_URL"] = os.environ["DATABASE_URL"]
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )
