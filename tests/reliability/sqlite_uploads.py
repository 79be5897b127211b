"""Run by test_sqlite_survives_concurrent_uploads: N concurrent uploads against a fresh SQLite file (argv[1])."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

os.environ["DATABASE_URL"] = f"sqlite:///{sys.argv[1]}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshviz.settings")
os.environ["CELERY_BROKER_URL"] = ""
os.environ["ALLOWED_HOSTS"] = "testserver"

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from meshviz.accounts.models import ApiKey  # noqa: E402
from tests.analyses.helpers import evidence_payload  # noqa: E402

call_command("migrate", verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    print("journal_mode", cursor.fetchone()[0])
key = ApiKey.issue(User.objects.create_user("alice"), "bot")[1]


def upload(_: int) -> int:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    try:
        return api.post("/api/v1/analyses/", evidence_payload(), format="json").status_code
    finally:
        connections.close_all()


with ThreadPoolExecutor(int(sys.argv[2])) as pool:
    codes = list(pool.map(upload, range(int(sys.argv[2]))))
print("codes", *codes)
