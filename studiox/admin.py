"""API tokens in the admin, shown by a prefix of the key only (see `ApiToken`)."""

from django.contrib import admin
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from studiox.models import ApiToken

admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(TokenAdmin):
    list_display = ("key_prefix", "user", "created")

    @admin.display(description="Key")
    def key_prefix(self, token: ApiToken) -> str:
        return token.key_prefix
