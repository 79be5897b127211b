from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from meshviz.analyses.api import AnalysisViewSet
from meshviz.analyses.api import router as api_router
from meshviz.web import pages, views


class DiagramFormat:
    """`svg` or `png` (anything else is a 404)."""

    regex = "svg|png"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(DiagramFormat, "diagramfmt")

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("new/", pages.new_analysis, name="new-analysis"),
    path("new/example/<str:name>/", pages.new_from_example, name="new-from-example"),
    path("a/<slug:slug>/", pages.analysis_page, name="analysis"),
    path("a/<slug:slug>/diagram/<int:number>.<diagramfmt:fmt>", pages.analysis_diagram, name="analysis-diagram"),
    path("a/<slug:slug>/fix/<int:patch>/<int:artifact>.txt", pages.fix_artifact, name="fix-artifact"),
    # not a router action: the router would add a trailing slash after the file name
    path(
        "api/v1/analyses/<slug:slug>/diagram.<diagramfmt:fmt>",
        AnalysisViewSet.as_view({"get": "diagram"}),
        name="api-analysis-diagram",
    ),
    path("api/v1/", include(api_router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
