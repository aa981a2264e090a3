"""Outgoing webhooks per role: a decision's notifications as an HTTP POST, signed with HMAC.

The delivery row is written in the transaction that opens (reminds, escalates...) the decision,
and its task is sent only once that commits: a rolled-back change notifies nobody, and a row
stays behind for every notification, delivered or not (admin › Webhook deliveries).

Signature (docs/decision-queue.md shows how to verify it): with a secret, every request carries
  X-StudioX-Timestamp: <unix seconds>
  X-StudioX-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body, keyed by the secret>
so a receiver can refuse a body that was altered, or replayed later than it tolerates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from decisions.models import Decision, RoleWebhook, WebhookDelivery
from studiox.celery import app as celery_app

logger = logging.getLogger(__name__)

DELIVER_TASK = "decisions.deliver_webhook"
SIGNATURE_HEADER = "X-StudioX-Signature"
TIMESTAMP_HEADER = "X-StudioX-Timestamp"
EVENT_OPENED = "decision.opened"
# How people read an event in Slack and Teams; events without a line here read "Decision update".
EVENT_HEADLINES = {
    EVENT_OPENED: "Decision needed",
    "decision.reminded": "Reminder: a decision is waiting",
    "decision.escalated": "Escalated: a decision is overdue",
}
ALLOWED_SCHEMES = ("http", "https")
MAX_RETRY_DELAY_SECONDS = 600.0  # a countdown far below the Redis visibility timeout
Status = WebhookDelivery.Status


class WebhookError(Exception):
    """A request about webhooks that cannot be done; the message says why."""


def webhook_url_check(url: str) -> None:
    """Raise WebhookError unless `url` is an absolute http(s) address."""
    parts = urlsplit(url or "")
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        raise WebhookError("A webhook address must start with http:// or https:// and name a host.")


# --- What is sent ---------------------------------------------------------------------------


def decision_event_payload(*, decision: Decision, event: str) -> dict:
    """The StudioX JSON body: the event, the decision and its mission, with links."""
    base = settings.STUDIOX_BASE_URL
    mission = decision.mission
    return {
        "event": event,
        "decision": {
            "id": decision.id,
            "title": decision.title,
            "summary": decision.summary,
            "role": decision.role.name,
            "status": decision.status,
            "due_at": decision.due_at.isoformat() if decision.due_at else None,
            "url": f"{base}/decisions/{decision.id}/",
        },
        "mission": {
            "id": str(mission.id),
            "type": mission.type,
            "title": mission.title,
            "summary": mission.summary,
            "url": f"{base}/missions/{mission.id}/",
        },
    }


def _message_lines(payload: dict) -> tuple[str, list[str], str]:
    """(headline, lines, url) of a notification, for the chat formats."""
    decision, mission = payload["decision"], payload["mission"]
    headline = EVENT_HEADLINES.get(payload["event"], "Decision update")
    lines = [f"Role: {decision['role']}"]
    if decision["due_at"]:
        lines.append(f"Due: {decision['due_at']}")
    if decision["summary"]:
        lines.append(decision["summary"])
    if mission["title"] or mission["summary"]:
        lines.append(f"Mission: {' — '.join(filter(None, [mission['title'], mission['summary']]))}")
    return f"{headline}: {decision['title']}", lines, decision["url"]


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads <...> as links and mentions: a title must not ping @channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(payload: dict) -> dict:
    """A Slack incoming-webhook message: {"text": ...} with a link to the decision."""
    headline, lines, url = _message_lines(payload)
    text = "\n".join(
        [f"*{_slack_escape(headline)}*", *map(_slack_escape, lines), f"<{url}|Open the decision>"]
    )
    return {"text": text}


def teams_body(payload: dict) -> dict:
    """A Microsoft Teams message with an Adaptive Card (incoming webhook or Workflows)."""
    headline, lines, url = _message_lines(payload)
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": headline, "weight": "Bolder", "wrap": True},
            *({"type": "TextBlock", "text": line, "wrap": True} for line in lines),
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Open the decision", "url": url}],
    }
    return {
        "type": "message",
        "summary": headline,
        "text": headline,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


BODIES = {
    RoleWebhook.Format.JSON: lambda payload: payload,
    RoleWebhook.Format.SLACK: slack_body,
    RoleWebhook.Format.TEAMS: teams_body,
}


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of b"<timestamp>." + body, keyed by the secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def webhook_request(*, delivery: WebhookDelivery, timestamp: int | None = None):
    """(raw body, headers) of one attempt: the signature covers this timestamp and body."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "StudioX-Webhook/1",
        "X-StudioX-Event": delivery.event,
        "X-StudioX-Delivery": str(delivery.id),
        TIMESTAMP_HEADER: stamp,
    }
    if delivery.webhook.secret:
        headers[SIGNATURE_HEADER] = webhook_signature(
            secret=delivery.webhook.secret, timestamp=stamp, body=body
        )
    return body, headers


# --- Writing deliveries (inside the caller's transaction) ------------------------------------


def webhooks_notify(*, decision: Decision, event: str, role_id: int | None = None) -> list[int]:
    """One delivery per enabled webhook of the role (the decision's own unless `role_id`
    names another, e.g. an escalation role), written in the caller's transaction; their
    tasks are sent once it commits. Returns the deliveries' ids."""
    hooks = RoleWebhook.objects.filter(role_id=role_id or decision.role_id, enabled=True)
    payload = None
    delivery_ids = []
    for hook in hooks:
        payload = payload or decision_event_payload(decision=decision, event=event)
        delivery = WebhookDelivery.objects.create(
            webhook=hook, decision=decision, event=event, payload=BODIES[hook.format](payload)
        )
        delivery_ids.append(delivery.id)
    if delivery_ids:
        transaction.on_commit(lambda: webhook_deliveries_enqueue(delivery_ids), robust=True)
    return delivery_ids


def webhook_deliveries_enqueue(delivery_ids: Iterable[int]) -> None:
    """Send one task per delivery. A broker that is down leaves the rows pending (the admin's
    "send again" retries them); it never fails the change that committed."""
    for delivery_id in delivery_ids:
        try:
            celery_app.send_task(DELIVER_TASK, args=[delivery_id])
        except Exception:
            logger.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)


@transaction.atomic
def webhook_deliveries_resend(
    *, deliveries: Iterable[WebhookDelivery], by: AbstractBaseUser
) -> int:
    """Send deliveries again (the admin's action), whatever became of them."""
    if not by.has_perm("decisions.change_webhookdelivery"):
        raise WebhookError("Only an administrator may send webhook deliveries again.")
    delivery_ids = [delivery.id for delivery in deliveries]
    WebhookDelivery.objects.filter(id__in=delivery_ids).update(
        status=Status.PENDING, last_error="", delivered_at=None
    )
    transaction.on_commit(lambda: webhook_deliveries_enqueue(delivery_ids), robust=True)
    return len(delivery_ids)


# --- Sending (the worker's task) -------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    status: str
    retry_in: float | None = None  # seconds until the next attempt; None: no more attempts


def webhook_retry_delay(*, attempt: int, retry_after: float | None = None) -> float:
    """Exponential back-off from STUDIOX_WEBHOOK_RETRY_SECONDS (1x, 2x, 4x...), or the
    receiver's Retry-After when it asks for longer; capped at ten minutes."""
    backoff = settings.STUDIOX_WEBHOOK_RETRY_SECONDS * 2 ** (attempt - 1)
    return min(max(backoff, retry_after or 0.0), MAX_RETRY_DELAY_SECONDS)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max((parsedate_to_datetime(value) - timezone.now()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _redacted(text: str, webhook: RoleWebhook) -> str:
    """An error message fit for the row and the log: a Slack or Teams address is itself a
    credential, and the secret must never be written anywhere."""
    for credential in filter(None, [webhook.url, webhook.secret]):
        text = text.replace(credential, "[redacted]")
    return text[:500]


def _record(delivery: WebhookDelivery, result: AttemptResult, **fields) -> AttemptResult:
    WebhookDelivery.objects.filter(id=delivery.id).update(status=result.status, **fields)
    return result


def webhook_deliver(*, delivery_id: int, attempt: int) -> AttemptResult:
    """POST a delivery once and record the answer. 2xx: delivered. 5xx, 429, a timeout or a
    refused connection: retried after a back-off until STUDIOX_WEBHOOK_MAX_ATTEMPTS, then
    failed. Anything else (another 4xx, a redirect): failed at once, as trying again would
    get the same answer."""
    delivery = WebhookDelivery.objects.select_related("webhook").filter(id=delivery_id).first()
    if delivery is None or delivery.status == Status.DELIVERED:
        return AttemptResult(status=delivery.status if delivery else "gone")
    webhook = delivery.webhook
    if not webhook.enabled:
        return _record(delivery, AttemptResult(Status.FAILED), last_error="the webhook is disabled")
    try:
        webhook_url_check(webhook.url)
    except WebhookError as exc:
        return _record(delivery, AttemptResult(Status.FAILED), last_error=str(exc))
    WebhookDelivery.objects.filter(id=delivery.id).update(attempts=F("attempts") + 1)
    body, headers = webhook_request(delivery=delivery)
    last_try = attempt >= settings.STUDIOX_WEBHOOK_MAX_ATTEMPTS
    host = urlsplit(webhook.url).hostname
    try:
        response = httpx.post(
            webhook.url,
            content=body,
            headers=headers,
            timeout=settings.STUDIOX_WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        error = _redacted(f"{type(exc).__name__}: {exc}", webhook)
        logger.warning("webhook delivery %s to %s failed: %s", delivery.id, host, error)
        status = Status.FAILED if last_try else Status.PENDING
        result = AttemptResult(status, None if last_try else webhook_retry_delay(attempt=attempt))
        return _record(delivery, result, last_error=error, response_status=None)
    if response.is_success:
        result = AttemptResult(Status.DELIVERED)
        return _record(
            delivery,
            result,
            response_status=response.status_code,
            last_error="",
            delivered_at=timezone.now(),
        )
    error = _redacted(f"HTTP {response.status_code}: {response.text[:200]}", webhook)
    logger.warning("webhook delivery %s to %s failed: %s", delivery.id, host, error)
    retryable = response.status_code >= 500 or response.status_code == 429
    if retryable and not last_try:
        delay = webhook_retry_delay(attempt=attempt, retry_after=_retry_after(response))
        result = AttemptResult(Status.PENDING, delay)
    else:
        result = AttemptResult(Status.FAILED)
    return _record(delivery, result, response_status=response.status_code, last_error=error)
