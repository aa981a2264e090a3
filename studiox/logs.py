"""What the console shows: the lines a person acts on, not one per connection or per e-mail."""

from __future__ import annotations

import logging

from django.core.mail.backends.base import BaseEmailBackend

# uvicorn's (and the websockets library's) INFO lines for every WebSocket that opens and
# closes: each open page reconnects after a restart, so they would bury everything else.
# A refused handshake (403) still shows.
WEBSOCKET_CHATTER = frozenset(
    {'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"}
)

mail_log = logging.getLogger("studiox.mail")


class DropWebSocketChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in WEBSOCKET_CHATTER


class OneLineConsoleEmailBackend(BaseEmailBackend):
    """The embedded default's e-mail: one log line per message (who, what), where Django's
    console backend prints every header and line, which a Celery worker logs as warnings.
    Set STUDIOX_EMAIL_BACKEND=django.core.mail.backends.console.EmailBackend for the full text."""

    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            mail_log.info("E-mail to %s: %s", ", ".join(message.recipients()), message.subject)
        return len(email_messages)
