"""Role webhooks: a delivery per enabled webhook of the role, written with the decision and sent
only after commit; JSON signed with HMAC over a timestamp and the body; Slack and Teams shapes;
retries on 5xx/429/network errors with back-off, none on other 4xx; secrets never recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import override_settings
from django.urls import reverse

from decisions.models import RoleWebhook, WebhookDelivery
from decisions.webhooks import webhook_deliver, webhooks_notify
from tests.support.decisions import open_decision
from tests.support.network import closed_port_url
from tests.support.processes import eventually

SECRET = "whsec-test-8f2a"


class Receiver:
    """An HTTP server on loopback that records every POST and answers from a script: the
    statuses queued for a path, then 200."""

    def __init__(self):
        self.requests: list[dict] = []
        # path -> [(status, headers) or (status, headers, body text)], answered in order
        self.replies: dict[str, list[tuple]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                queued = receiver.replies.get(self.path) or []
                status, headers, *text = queued.pop(0) if queued else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write((text or ["ok" if status < 300 else "no thanks"])[0].encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[dict]:
        return [request for request in self.requests if request["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def hook(path_or_url: str, receiver: Receiver | None = None, **fields) -> RoleWebhook:
    url = receiver.url(path_or_url) if receiver else path_or_url
    role = Group.objects.get_or_create(name=fields.pop("role", "supervisor"))[0]
    return RoleWebhook.objects.create(role=role, url=url, **{"secret": SECRET, **fields})


def verify(secret: str, headers: dict, body: bytes, tolerance: int = 300) -> dict:
    """The receiver's check, as docs/decision-queue.md shows it."""
    timestamp = headers["X-StudioX-Timestamp"]
    signed = timestamp.encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers["X-StudioX-Signature"]):
        raise ValueError("bad signature")
    if abs(time.time() - int(timestamp)) > tolerance:
        raise ValueError("too old: a replay?")
    return json.loads(body)


def delivery_for(webhook: RoleWebhook) -> WebhookDelivery:
    return WebhookDelivery.objects.get(webhook=webhook)


# --- Writing deliveries ----------------------------------------------------------------------


@pytest.mark.django_db
def test_an_opened_decision_writes_a_delivery_per_enabled_webhook_of_its_role(
    requester, django_capture_on_commit_callbacks
):
    mine = hook("https://hooks.example/a")
    hook("https://hooks.example/off", enabled=False)
    hook("https://hooks.example/finance", role="finance")

    with django_capture_on_commit_callbacks(execute=False) as without_webhooks:
        open_decision(requester, "Approve refund A-6", step="finance", role="controller")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decision = open_decision(requester, "Approve refund A-7")

    delivery = WebhookDelivery.objects.get()
    assert (delivery.webhook, delivery.decision, delivery.event, delivery.status) == (
        mine,
        decision,
        "decision.opened",
        "pending",
    )
    # The webhook's task waits for the commit, beside the e-mail and the live hint.
    assert len(callbacks) == len(without_webhooks) + 1


@pytest.mark.django_db
def test_an_escalation_notifies_the_webhooks_of_the_role_it_names(requester):
    hook("https://hooks.example/supervisor")
    controller = hook("https://hooks.example/controller", role="controller")
    decision = open_decision(requester, "Approve refund A-7")

    ids = webhooks_notify(decision=decision, event="decision.escalated", role_id=controller.role_id)

    assert list(WebhookDelivery.objects.filter(id__in=ids).values_list("webhook", "event")) == [
        (controller.id, "decision.escalated")
    ]


# --- What is sent ----------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(STUDIOX_BASE_URL="https://studiox.example")
def test_the_json_body_names_the_decision_and_mission_and_is_signed(requester, receiver):
    webhook = hook("/json", receiver)
    decision = open_decision(requester, "Approve refund A-7", summary="Above the threshold")
    decision.mission.title, decision.mission.summary = "Refund A-7", "740.00 EUR asked"
    decision.mission.save()
    decision = type(decision).objects.get(id=decision.id)  # the mission as saved
    WebhookDelivery.objects.all().delete()
    webhooks_notify(decision=decision, event="decision.opened")

    result = webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1)

    (request,) = receiver.at("/json")
    body = verify(SECRET, request["headers"], request["body"])
    assert body == {
        "event": "decision.opened",
        "decision": {
            "id": decision.id,
            "title": "Approve refund A-7",
            "summary": "Above the threshold",
            "role": "supervisor",
            "status": "pending",
            "due_at": None,
            "url": f"https://studiox.example/decisions/{decision.id}/",
        },
        "mission": {
            "id": str(decision.mission_id),
            "type": "test_approval",
            "title": "Refund A-7",
            "summary": "740.00 EUR asked",
            "url": f"https://studiox.example/missions/{decision.mission_id}/",
        },
    }
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-StudioX-Event"] == "decision.opened"
    assert request["headers"]["X-StudioX-Delivery"] == str(delivery_for(webhook).id)
    delivery = delivery_for(webhook)
    assert (result.status, result.retry_in) == ("delivered", None)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None


@pytest.mark.django_db
def test_a_body_altered_or_signed_with_another_secret_does_not_verify(requester, receiver):
    webhook = hook("/json", receiver)
    open_decision(requester, "Approve refund A-7")
    webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1)
    (request,) = receiver.at("/json")

    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET, request["headers"], request["body"].replace(b"A-7", b"A-8"))
    with pytest.raises(ValueError, match="bad signature"):
        verify("another-secret", request["headers"], request["body"])
    stale = {**request["headers"], "X-StudioX-Timestamp": "1000000000"}
    with pytest.raises(ValueError, match="bad signature"):  # the timestamp is signed too
        verify(SECRET, stale, request["body"])


@pytest.mark.django_db
def test_slack_gets_text_and_teams_an_adaptive_card_both_signed(requester, receiver):
    slack = hook("/slack", receiver, format="slack")
    teams = hook("/teams", receiver, format="teams")
    decision = open_decision(requester, "Approve <refund> & more", summary="Above the threshold")

    for webhook in (slack, teams):
        assert webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1).status == (
            "delivered"
        )

    (to_slack,) = receiver.at("/slack")
    slack_body = verify(SECRET, to_slack["headers"], to_slack["body"])
    assert list(slack_body) == ["text"]
    assert "Decision needed: Approve &lt;refund&gt; &amp; more" in slack_body["text"]
    assert f"/decisions/{decision.id}/|Open the decision>" in slack_body["text"]
    (to_teams,) = receiver.at("/teams")
    teams_body = verify(SECRET, to_teams["headers"], to_teams["body"])
    (attachment,) = teams_body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "Decision needed: Approve <refund> & more"
    assert "Above the threshold" in [block["text"] for block in card["body"]]
    assert card["actions"][0]["url"].endswith(f"/decisions/{decision.id}/")


@pytest.mark.django_db
def test_without_a_secret_a_chat_webhook_is_sent_unsigned(requester, receiver):
    slack = hook("/slack", receiver, format="slack", secret="")
    open_decision(requester)

    webhook_deliver(delivery_id=delivery_for(slack).id, attempt=1)

    (request,) = receiver.at("/slack")
    assert "X-StudioX-Signature" not in request["headers"]
    assert "X-StudioX-Timestamp" in request["headers"]


# --- Answers and retries (one attempt at a time; the task chains them) -----------------------


@pytest.mark.django_db
@override_settings(STUDIOX_WEBHOOK_RETRY_SECONDS=10, STUDIOX_WEBHOOK_MAX_ATTEMPTS=3)
def test_a_server_error_is_retried_with_back_off_then_given_up(requester, receiver):
    webhook = hook("/down", receiver)
    receiver.replies["/down"] = [(500, {}), (503, {}), (502, {})]
    open_decision(requester)
    delivery_id = delivery_for(webhook).id

    first = webhook_deliver(delivery_id=delivery_id, attempt=1)
    second = webhook_deliver(delivery_id=delivery_id, attempt=2)
    assert (first.status, first.retry_in, second.retry_in) == ("pending", 10, 20)
    last = webhook_deliver(delivery_id=delivery_id, attempt=3)

    assert (last.status, last.retry_in) == ("failed", None)
    delivery = delivery_for(webhook)
    assert (delivery.attempts, delivery.response_status) == (3, 502)
    assert delivery.last_error == "HTTP 502: no thanks"
    assert len(receiver.at("/down")) == 3


@pytest.mark.django_db
def test_a_client_error_fails_at_once(requester, receiver):
    webhook = hook("/gone", receiver)
    receiver.replies["/gone"] = [(400, {})]
    open_decision(requester)

    result = webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1)

    assert (result.status, result.retry_in) == ("failed", None)
    delivery = delivery_for(webhook)
    assert (delivery.attempts, delivery.response_status) == (1, 400)


@pytest.mark.django_db
@override_settings(STUDIOX_WEBHOOK_RETRY_SECONDS=1)
def test_too_many_requests_waits_as_long_as_the_receiver_asks(requester, receiver):
    webhook = hook("/busy", receiver)
    receiver.replies["/busy"] = [(429, {"Retry-After": "42"})]
    open_decision(requester)

    result = webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1)

    assert (result.status, result.retry_in) == ("pending", 42)


@pytest.mark.django_db
def test_a_refused_connection_is_retried_and_recorded_without_the_address(requester, caplog):
    webhook = hook(closed_port_url() + f"/services/T0/B0/{SECRET}")
    open_decision(requester)

    with caplog.at_level(logging.DEBUG):
        result = webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1)

    assert result.status == "pending" and result.retry_in > 0
    delivery = delivery_for(webhook)
    assert delivery.attempts == 1 and delivery.response_status is None
    assert delivery.last_error.startswith("ConnectError")
    assert SECRET not in delivery.last_error and SECRET not in caplog.text
    assert webhook.url not in caplog.text


@pytest.mark.django_db
def test_an_echoed_secret_is_never_recorded(requester, receiver):
    webhook = hook("/echo", receiver)
    open_decision(requester)

    # A careless receiver answers with the secret in its body.
    receiver.replies["/echo"] = [(400, {}, f"bad signature for secret {SECRET}")]

    webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1)

    delivery = delivery_for(webhook)
    assert delivery.last_error == "HTTP 400: bad signature for secret [redacted]"


@pytest.mark.django_db
def test_only_http_addresses_are_called(requester):
    webhook = hook("ftp://files.example/hook")
    open_decision(requester)

    result = webhook_deliver(delivery_id=delivery_for(webhook).id, attempt=1)

    delivery = delivery_for(webhook)
    assert (result.status, delivery.attempts) == ("failed", 0)
    assert "http://" in delivery.last_error


# --- Admin -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_never_shows_the_secret_and_keeps_it_when_left_empty(admin_client):
    webhook = hook("https://hooks.example/a")
    change = reverse("admin:decisions_rolewebhook_change", args=[webhook.pk])

    assert SECRET not in admin_client.get(change).text
    assert SECRET not in admin_client.get(reverse("admin:decisions_rolewebhook_changelist")).text
    form = {"role": webhook.role_id, "url": webhook.url, "format": "json", "enabled": "on"}
    response = admin_client.post(change, {**form, "secret": ""})

    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.secret == SECRET


@pytest.mark.django_db
def test_the_admin_refuses_other_schemes_and_unsigned_json(admin_client):
    role = Group.objects.create(name="controller")
    add = reverse("admin:decisions_rolewebhook_add")
    form = {"role": role.id, "format": "json", "enabled": "on"}

    ftp = admin_client.post(add, {**form, "url": "ftp://files.example/hook", "secret": "s"})
    unsigned = admin_client.post(add, {**form, "url": "https://hooks.example/a", "secret": ""})

    assert "must start with http:// or https://" in ftp.text
    assert "needs a secret to sign with" in unsigned.text
    assert not RoleWebhook.objects.exists()


@pytest.mark.django_db
def test_send_again_puts_a_failed_delivery_back_after_commit(
    admin_client, requester, django_capture_on_commit_callbacks
):
    webhook = hook("https://hooks.example/a")
    open_decision(requester)
    delivery = delivery_for(webhook)
    WebhookDelivery.objects.filter(id=delivery.id).update(status="failed", last_error="HTTP 400")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client.post(
            reverse("admin:decisions_webhookdelivery_changelist"),
            {"action": "send_again", "_selected_action": [delivery.id]},
        )

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("pending", "")
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_deliveries_are_read_only_in_the_admin(admin_client, requester):
    webhook = hook("https://hooks.example/a")
    open_decision(requester)
    change = reverse("admin:decisions_webhookdelivery_change", args=[delivery_for(webhook).pk])

    page = admin_client.get(change).text

    assert 'name="_save"' not in page


# --- On real workers -------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_retries_a_server_error_then_delivers_and_gives_up_on_a_client_error(
    requester, receiver, processes
):
    flaky = hook("/flaky", receiver)
    refusing = hook("/refusing", receiver)
    receiver.replies["/flaky"] = [(500, {})]
    receiver.replies["/refusing"] = [(400, {}), (400, {})]
    worker = processes.worker(STUDIOX_WEBHOOK_RETRY_SECONDS="0.2")
    processes.worker_ready(worker)

    open_decision(requester, "Approve refund A-7")

    delivered = eventually(
        lambda: delivery_for(flaky).status == "delivered" and delivery_for(flaky),
        what="the flaky webhook's delivery",
    )
    failed = eventually(
        lambda: delivery_for(refusing).status == "failed" and delivery_for(refusing),
        what="the refusing webhook's delivery",
    )
    assert (delivered.attempts, delivered.response_status) == (2, 200)
    assert [verify(SECRET, r["headers"], r["body"])["event"] for r in receiver.at("/flaky")] == [
        "decision.opened",
        "decision.opened",
    ]
    assert (failed.attempts, failed.response_status) == (1, 400)
    assert len(receiver.at("/refusing")) == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_opening_sends_nothing(requester, receiver, processes):
    webhook = hook("/json", receiver)
    worker = processes.worker()
    processes.worker_ready(worker)

    with pytest.raises(RuntimeError), transaction.atomic():
        open_decision(requester, "Approve never", step="never")
        raise RuntimeError("the checkpoint failed")
    with transaction.atomic():
        kept = open_decision(requester, "Approve kept", step="kept")

    eventually(lambda: delivery_for(webhook).status == "delivered", what="the kept delivery")
    bodies = [json.loads(request["body"]) for request in receiver.at("/json")]
    assert [body["decision"]["id"] for body in bodies] == [kept.id]
    assert WebhookDelivery.objects.count() == 1
