"""Teams (who an analysis is shared with) and API keys (how bots authenticate).

An API key is shown once, when it is created; the database keeps only its SHA-256 digest and a short
public prefix to tell keys apart. Keys carry 256 bits of randomness, so a fast digest is enough: there
is nothing to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models

#: A key reads `mvz_<prefix>_<secret>`: the prefix (8 hex digits) is stored and shown, the secret is not.
KEY_PREFIX = "mvz_"
PREFIX_HEX = 8
SECRET_BYTES = 32


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="what uses the key, e.g. 'chatops bot'")
    prefix = models.CharField(max_length=PREFIX_HEX, unique=True, editable=False)
    hashed = models.CharField(max_length=64, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{KEY_PREFIX}{self.prefix}… ({self.name})"

    @classmethod
    def issue(cls, user: User, name: str) -> tuple[ApiKey, str]:
        """Create a key for `user`; returns the stored key and the plaintext, which is never stored."""
        while True:
            prefix = secrets.token_hex(PREFIX_HEX // 2)
            if not cls.objects.filter(prefix=prefix).exists():
                break
        plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        key = cls.objects.create(user=user, name=name, prefix=prefix, hashed=digest(plaintext))
        return key, plaintext

    @classmethod
    def lookup(cls, plaintext: str) -> ApiKey | None:
        """The live key `plaintext` names, or None (unknown, malformed, revoked or its user inactive)."""
        if not plaintext.startswith(KEY_PREFIX):
            return None
        prefix = plaintext[len(KEY_PREFIX) : len(KEY_PREFIX) + PREFIX_HEX]
        key = cls.objects.select_related("user").filter(prefix=prefix, revoked__isnull=True).first()
        if key is None or not hmac.compare_digest(key.hashed, digest(plaintext)):
            return None
        if not key.user.is_active:
            return None
        return key


class TeamInvitation(models.Model):
    """A member asked `invitee` to join `team`; membership begins only when the invitee accepts."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_invitations")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="team_invitations_sent"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created",)
        constraints = [models.UniqueConstraint(fields=("team", "invitee"), name="one_invitation_per_team_and_user")]

    def __str__(self) -> str:
        return f"invitation of {self.invitee} to {self.team}"


class AuditEvent(models.Model):
    """Something that changed who may see or do what: sharing, API keys, clusters, team memberships, deletions.

    Each event is kept for the user whose log it belongs to (`user`): the one who acted and, when someone else is
    affected (an invitee, the members of a team), for them too.  Shown on the account page and by
    `GET /api/v1/audit/`.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="audit_events_caused"
    )
    action = models.CharField(max_length=40)  # e.g. analysis.share, key.create, cluster.delete, team.join
    subject = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.action} {self.subject}"
