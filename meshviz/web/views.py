import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from meshviz.analyses import access

logger = logging.getLogger(__name__)


#: analyses listed on the home page
RECENT = 20


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """What meshviz does; for a logged-in user, their recent analyses and those shared with their teams."""
    recent = access.member_of_analysis(request.user).select_related("owner").order_by("-created")[:RECENT]
    return render(request, "web/home.html", {"recent": list(recent)})


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database check for load balancers and container health checks."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.exception("healthz: database query failed")
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
