"""Typed readers for settings taken from the environment; a bad value fails loudly."""

import os
import re

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.getenv(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.getenv(name, "")
    if value == "":
        return default
    if value not in ("True", "False", "true", "false", "1", "0"):
        raise ImproperlyConfigured(f"Unexpected value {name}={value}, use 'True' or 'False'")
    return value in ("True", "true", "1")


def env_int(name: str, default: int) -> int:
    value = os.getenv(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Unexpected value {name}={value}, use an integer") from exc


def env_float(name: str, default: float) -> float:
    value = os.getenv(name, "")
    if value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Unexpected value {name}={value}, use a number") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """A header name (`X-Forwarded-Proto`) that a proxy sets to `https` on secure requests, in
    the form of Django's SECURE_PROXY_SSL_HEADER: ("HTTP_X_FORWARDED_PROTO", "https")."""
    value = os.getenv(name, "").strip()
    if value == "":
        return None
    if not re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", value):
        raise ImproperlyConfigured(
            f"Unexpected value {name}={value}, use a header name such as X-Forwarded-Proto"
        )
    return "HTTP_" + value.upper().replace("-", "_"), "https"
