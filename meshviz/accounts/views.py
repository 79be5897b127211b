"""The account page: API keys (created, shown once, revoked) and teams (created, joined by invitation of a member)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .models import ApiKey, Team

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
        "teams": Team.objects.filter(members=_me(request)).prefetch_related("members"),
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
    _, plaintext = ApiKey.issue(_me(request), name)
    return _account(request, new_key={"name": name, "key": plaintext})


@login_required
@require_POST
def revoke_key(request: HttpRequest, prefix: str) -> HttpResponse:
    key = get_object_or_404(ApiKey, prefix=prefix, user=request.user, revoked__isnull=True)
    key.revoked = timezone.now()
    key.save(update_fields=["revoked"])
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
    except IntegrityError:
        messages.error(request, f"A team named {name!r} already exists.")
        return redirect("account")
    messages.success(request, f"Created team {team.name}.")
    return redirect("account")


@login_required
@require_POST
def add_member(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id, members=request.user)
    username = _name(request, "username")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        messages.error(request, f"No user named {username!r}.")
    else:
        team.members.add(user)
        messages.success(request, f"Added {username} to {team.name}.")
    return redirect("account")


@login_required
@require_POST
def leave_team(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id, members=request.user)
    team.members.remove(_me(request))
    messages.success(request, f"You left {team.name}.")
    return redirect("account")
