"""`manage.py demo_user`: create the demo user (MESHVIZ_DEMO_USER) with a fresh random password and print it.

Run by `make run`: every run prints a working login and no password is ever fixed in the code or the
database dump. The demo user is an ordinary user (not staff), so the login opens the app, not the admin.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create (or reset the password of) the demo user and print the login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=None, help="default: the MESHVIZ_DEMO_USER setting")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"] or settings.MESHVIZ_DEMO_USER
        user, created = get_user_model().objects.get_or_create(username=username)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_active = True
        user.save()
        self.stdout.write(f"demo login: {username} / {password}  ({'created' if created else 'password reset'})")
