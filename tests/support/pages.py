"""For the HTML pages and the admin: Django test clients signed in as a person."""

from django.test import Client


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def session_cookie(user) -> str:
    """The value of a fresh `sessionid` cookie for `user` (for WebSockets and browsers)."""
    return logged_in(user).cookies["sessionid"].value
