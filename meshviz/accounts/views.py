"""The account page: API keys (created, shown once, revoked), teams (created; a member invites, the invitee
accepts or declines), the audit log; and the rate-limited login."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from meshviz.web import ratelimit

from . import audit
from .models import ApiKey, Team, TeamInvitation

MAX_NAME = 100


def _me(request: HttpRequest) -> User:
    """The logged-in user (views here are all @login_required)."""
    user = request.user
    assert isinstance(user, User)
    return user


def _name(request: HttpRequest, field: str = "name") -> str:
    return (request.POST.get(field) or "").strip()[:MAX_NAME]


def _account(request: HttpRequest, new_key: dict[str, str] | None = None) -> HttpResponse:
    context = {
        "keys": ApiKey.objects.filter(user=_me(request)),
        "teams": Team.objects.filter(members=_me(request)).prefetch_related("members", "invitations__invitee"),
        "invitations": TeamInvitation.objects.filter(invitee=_me(request)).select_related("team", "invited_by"),
        "events": audit.events_for(_me(request), limit=100),
        "new_key": new_key,
    }
    return render(request, "accounts/account.html", context)


@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    return _account(request)


@never_cache
@login_required
@require_POST
def create_key(request: HttpRequest) -> HttpResponse:
    """Issue a key and show it in this response only: it is stored nowhere (not even in the session)."""
    name = _name(request)
    if not name:
        messages.error(request, "Give the key a name (what will use it, e.g. 'chatops bot').")
        return redirect("account")
    key, plaintext = ApiKey.issue(_me(request), name)
    audit.record(_me(request), "key.create", str(key))
    return _account(request, new_key={"name": name, "key": plaintext})


@login_required
@require_POST
def revoke_key(request: HttpRequest, prefix: str) -> HttpResponse:
    key = get_object_or_404(ApiKey, prefix=prefix, user=request.user, revoked__isnull=True)
    key.revoked = timezone.now()
    key.save(update_fields=["revoked"])
    audit.record(_me(request), "key.revoke", str(key))
    messages.success(request, f"Revoked {key}.")
    return redirect("account")


@login_required
@require_POST
def create_team(request: HttpRequest) -> HttpResponse:
    name = _name(request)
    if not name:
        messages.error(request, "Give the team a name.")
        return redirect("account")
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name)
            team.members.add(_me(request))
            audit.record(_me(request), "team.create", f"team {team.name}")
    except IntegrityError:
        messages.error(request, f"A team named {name!r} already exists.")
        return redirect("account")
    messages.success(request, f"Created team {team.name}.")
    return redirect("account")


@login_required
@require_POST
def add_member(request: HttpRequest, team_id: int) -> HttpResponse:
    """Invite a user: they join only when they accept on their account page."""
    team = get_object_or_404(Team, pk=team_id, members=request.user)
    username = _name(request, "username")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        messages.error(request, f"No user named {username!r}.")
    elif team.members.filter(pk=user.pk).exists():
        messages.info(request, f"{username} is already in {team.name}.")
    else:
        _, created = TeamInvitation.objects.get_or_create(
            team=team, invitee=user, defaults={"invited_by": _me(request)}
        )
        if created:
            audit.record(_me(request), "team.invite", f"team {team.name}", also=[user], invitee=username)
        messages.success(request, f"Invited {username} to {team.name}: they join when they accept.")
    return redirect("account")


@login_required
@require_POST
def answer_invitation(request: HttpRequest, invitation_id: int, answer: str) -> HttpResponse:
    invitation = get_object_or_404(TeamInvitation, pk=invitation_id, invitee=request.user)
    team = invitation.team
    with transaction.atomic():
        if answer == "accept":
            team.members.add(_me(request))
            audit.record(_me(request), "team.join", f"team {team.name}", also=team.members.all())
            messages.success(request, f"You joined {team.name}.")
        else:
            audit.record(_me(request), "team.decline", f"team {team.name}", also=[invitation.invited_by])
            messages.info(request, f"You declined the invitation to {team.name}.")
        invitation.delete()
    return redirect("account")


@login_required
@require_POST
def leave_team(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id, members=request.user)
    team.members.remove(_me(request))
    audit.record(_me(request), "team.leave", f"team {team.name}", also=team.members.all())
    messages.success(request, f"You left {team.name}.")
    return redirect("account")


class RateLimitedLoginView(auth_views.LoginView):
    """The login page, with attempts limited per client address and per user name (MESHVIZ_LOGIN_RATE)."""

    template_name = "accounts/login.html"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        rate = settings.MESHVIZ_LOGIN_RATE
        username = (request.POST.get("username") or "").strip().lower()[:150]
        for scope, ident in (("login-addr", ratelimit.client_address(request)), ("login-user", username)):
            wait = ratelimit.hit(scope, ident, rate)
            if wait is not None:
                response = render(
                    request,
                    "accounts/login.html",
                    {"form": self.get_form(), "throttled": wait},
                    status=429,
                )
                response["Retry-After"] = str(wait)
                return response
        return super().post(request, *args, **kwargs)
