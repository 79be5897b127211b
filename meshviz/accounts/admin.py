from typing import TYPE_CHECKING

from django.contrib import admin

from .models import ApiKey, Team

# ModelAdmin is generic only for the type checker (django-stubs); at run time it is a plain class.
if TYPE_CHECKING:
    _TeamAdminBase = admin.ModelAdmin[Team]
    _ApiKeyAdminBase = admin.ModelAdmin[ApiKey]
else:
    _TeamAdminBase = _ApiKeyAdminBase = admin.ModelAdmin


@admin.register(Team)
class TeamAdmin(_TeamAdminBase):
    list_display = ("name", "created")
    filter_horizontal = ("members",)


@admin.register(ApiKey)
class ApiKeyAdmin(_ApiKeyAdminBase):
    list_display = ("prefix", "name", "user", "created", "last_used", "revoked")
    readonly_fields = ("prefix", "hashed", "created", "last_used")
