"""Page URLs for live collection (included from meshviz/urls.py)."""

from django.urls import URLPattern, path

from . import pages

urlpatterns: list[URLPattern] = [
    path("clusters/", pages.clusters_page, name="clusters-page"),
    path("clusters/<int:pk>/", pages.cluster_page, name="cluster-page"),
    path("clusters/<int:pk>/check/", pages.check_cluster, name="cluster-page-check"),
    path("clusters/<int:pk>/delete/", pages.delete_cluster, name="cluster-page-delete"),
    path("clusters/<int:pk>/namespaces/<str:namespace>/", pages.pods_page, name="cluster-page-pods"),
    path("clusters/<int:pk>/collect/", pages.collect_pod, name="cluster-page-collect"),
    path("clusters/<int:pk>/watch/", pages.watch_pod, name="cluster-page-watch"),
    path("collections/<int:pk>/", pages.collection_page, name="collection-page"),
    path("collections/<int:pk>/recollect/", pages.recollect, name="collection-page-recollect"),
    path("watched-pods/", pages.watched_pods_page, name="watched-pods-page"),
]
