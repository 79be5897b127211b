"""Who may see and change an analysis. Every page and API view gets analyses through here.

* read: the owner, members of a team the analysis is shared with, and - when `public` - anyone;
* write (add a connection, re-run): the owner and the members of its teams;
* manage (sharing, the public flag): the owner.

An analysis the user may not read is a 404, exactly like a slug that does not exist, so a permalink
never reveals that something is behind it. The page views send an anonymous visitor to the login page
first, since the permalink may well be theirs once they log in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse

from .models import Analysis


def _user(request_or_user: Any) -> Any:
    return getattr(request_or_user, "user", request_or_user)


def visible_to(user: Any) -> QuerySet[Analysis]:
    """The analyses `user` may read (public ones only when anonymous)."""
    if user is None or not user.is_authenticated:
        return Analysis.objects.filter(public=True)
    return Analysis.objects.filter(Q(public=True) | Q(owner=user) | Q(teams__members=user)).distinct()


def member_of_analysis(user: Any) -> QuerySet[Analysis]:
    """The analyses `user` owns or that are shared with one of their teams (not merely public)."""
    if user is None or not user.is_authenticated:
        return Analysis.objects.none()
    return Analysis.objects.filter(Q(owner=user) | Q(teams__members=user)).distinct()


def can_read(user: Any, analysis: Analysis) -> bool:
    return analysis.public or can_write(user, analysis)


def can_write(user: Any, analysis: Analysis) -> bool:
    if user is None or not user.is_authenticated:
        return False
    if analysis.owner_id == user.pk:
        return True
    return analysis.teams.filter(members=user).exists()


def can_manage(user: Any, analysis: Analysis) -> bool:
    return user is not None and user.is_authenticated and analysis.owner_id == user.pk


def readable_analysis(request: Any, slug: str) -> Analysis:
    """The analysis `slug` if the request's user may read it; Http404 otherwise (unknown or private)."""
    analysis = Analysis.objects.filter(slug=slug).first()
    if analysis is None or not can_read(_user(request), analysis):
        raise Http404("no such analysis")
    return analysis


def writable_analysis(request: Any, slug: str) -> Analysis:
    """Like `readable_analysis`, and PermissionDenied (403) when the user may only read it."""
    analysis = readable_analysis(request, slug)
    if not can_write(_user(request), analysis):
        raise PermissionDenied("this analysis is shared read-only with you")
    return analysis


def managed_analysis(request: Any, slug: str) -> Analysis:
    """Like `readable_analysis`, and PermissionDenied (403) unless the user owns it."""
    analysis = readable_analysis(request, slug)
    if not can_manage(_user(request), analysis):
        raise PermissionDenied("only the owner can change who sees this analysis")
    return analysis


def login_first(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An anonymous visitor asking for an analysis they may not read goes to the login page first (it may be
    theirs once logged in); a logged-in user gets the 404."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            if request.user.is_authenticated or request.GET.get("format") == "json":
                raise
            slugs = [str(v) for k, v in kwargs.items() if k.startswith("slug")]
            if all(Analysis.objects.filter(slug=s, public=True).exists() for s in slugs):
                raise  # the analyses are public: the 404 is about something else (a rule, a family)
            return redirect_to_login(request.get_full_path())

    return wrapped


def owner_for(request: Any) -> Any:
    """The owner for a new analysis made by this request: its user, or None when anonymous."""
    user = _user(request)
    return user if user is not None and user.is_authenticated else None
