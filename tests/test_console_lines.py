"""What the embedded default's console shows (studiox.logs): one line per notification e-mail,
and no line per WebSocket opened or closed, while a refused handshake still shows."""

import logging

from django.core.mail import EmailMessage

from studiox.logs import DropWebSocketChatter, OneLineConsoleEmailBackend


def uvicorn_record(msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)


def test_websocket_opened_and_closed_lines_are_dropped_and_refusals_kept():
    chatter = DropWebSocketChatter()
    assert not chatter.filter(uvicorn_record('%s - "WebSocket %s" [accepted]', "1.2.3.4", "/ws/"))
    assert not chatter.filter(uvicorn_record("connection open"))
    assert not chatter.filter(uvicorn_record("connection closed"))
    assert chatter.filter(uvicorn_record('%s - "WebSocket %s" 403', "1.2.3.4", "/ws/"))
    assert chatter.filter(uvicorn_record("Uvicorn running on %s", "http://127.0.0.1:8000"))


def test_uvicorn_logs_pass_through_the_filter_as_configured():
    """The settings attach it where uvicorn logs (a logger of its own would be configured
    after uvicorn's and win: this pins the name)."""
    filters = logging.getLogger("uvicorn.error").filters
    assert any(isinstance(each, DropWebSocketChatter) for each in filters)


def test_an_email_is_one_info_line(caplog):
    message = EmailMessage(
        subject="[StudioX] Decision needed: Refund 42.00 EUR for order A-1001",
        body="Refund 42.00 EUR for order A-1001\n\nDue: 2026-12-03 16:54 UTC\n\nOpen it: ...",
        to=["supervisor@studiox.local", "admin@studiox.local"],
    )
    with caplog.at_level(logging.INFO, logger="studiox.mail"):
        assert OneLineConsoleEmailBackend().send_messages([message]) == 1
    assert [record.getMessage() for record in caplog.records] == [
        "E-mail to supervisor@studiox.local, admin@studiox.local: "
        "[StudioX] Decision needed: Refund 42.00 EUR for order A-1001"
    ]
