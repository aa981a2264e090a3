"""Sign-in pages (the app's and the admin's) that stop password guessing: too many failures
for one account, or from one address, and that account or address waits out a cool-off.

The address limit is higher than the account limit, so colleagues behind one proxy are not
all locked out by one person's typos, while a guesser spreading over accounts still is.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpResponse

from studiox.lockout import (
    FailureLimit,
    client_address,
    in_minutes,
    login_account_limit,
    login_address_limit,
)

TOO_MANY = "too_many_failures"


class ThrottledSignInMixin:
    """Refuses a locked account or address before looking at the password, and counts every
    wrong password against both."""

    too_many_for_account = "Too many failed sign-ins for this account; try again in {wait}."
    too_many_from_address = "Too many failed sign-ins from your address; try again in {wait}."

    def clean(self):
        username = (self.cleaned_data.get("username") or "").strip().lower()
        self._check_locks(username)
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                self._count_failure(username)
            raise
        login_account_limit().forget(username)
        return cleaned

    def _limits(self, username: str) -> list[tuple[FailureLimit, str, str]]:
        return [
            (login_account_limit(), username, self.too_many_for_account),
            (login_address_limit(), client_address(self.request), self.too_many_from_address),
        ]

    def _check_locks(self, username: str) -> None:
        for limit, key, message in self._limits(username):
            wait = limit.wait(key)
            if wait is not None:
                self._refuse(message, wait)

    def _count_failure(self, username: str) -> None:
        waits = [
            (wait, message)
            for limit, key, message in self._limits(username)
            if (wait := limit.record(key)) is not None
        ]
        if waits:
            self._refuse(waits[0][1], waits[0][0])

    def _refuse(self, message: str, wait: int) -> None:
        self.retry_after = wait
        raise forms.ValidationError(message.format(wait=in_minutes(wait)), code=TOO_MANY)


class SignInForm(ThrottledSignInMixin, AuthenticationForm):
    pass


class AdminSignInForm(ThrottledSignInMixin, AdminAuthenticationForm):
    pass


class SignInView(LoginView):
    """Django's login view; a refusal for too many failures is a 429 with Retry-After."""

    authentication_form = SignInForm

    def form_invalid(self, form: SignInForm) -> HttpResponse:
        response = super().form_invalid(form)
        retry_after = getattr(form, "retry_after", None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response
