from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("login/", views.RateLimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("account/keys/", views.create_key, name="account-create-key"),
    path("account/keys/<str:prefix>/revoke/", views.revoke_key, name="account-revoke-key"),
    path("account/teams/", views.create_team, name="account-create-team"),
    path("account/teams/<int:team_id>/members/", views.add_member, name="account-add-member"),
    path("account/teams/<int:team_id>/leave/", views.leave_team, name="account-leave-team"),
    path(
        "account/invitations/<int:invitation_id>/<str:answer>/",
        views.answer_invitation,
        name="account-answer-invitation",
    ),
]
