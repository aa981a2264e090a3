"""Health of the three things StudioX cannot run without: database, broker, channel layer."""

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from studiox.celery import app as celery_app


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_broker() -> str:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport.driver_type


async def _layer_round_trip(layer) -> None:
    channel = await layer.new_channel()
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.ping", "token": token})
    message = await layer.receive(channel)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned a different message")


def check_channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    async_to_sync(_layer_round_trip)(layer)
    return type(layer).__name__


CHECKS = {"database": check_database, "broker": check_broker, "channel_layer": check_channel_layer}


def health_report() -> tuple[bool, dict[str, dict[str, str]]]:
    report: dict[str, dict[str, str]] = {}
    healthy = True
    for name, check in CHECKS.items():
        try:
            report[name] = {"status": "ok", "backend": str(check())}
        except Exception as exc:  # a health probe reports every failure, it never raises
            healthy = False
            report[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return healthy, report
