"""The demo knowledge: idempotent, and its refund cases stay true whenever the seed runs."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command

from knowledge.models import Document, Passage, Record
from knowledge.services import knowledge_record, knowledge_search
from showcases.refund.seed import seed_demo

WINDOW = timedelta(days=30)


def delivered(order: dict) -> date:
    return date.fromisoformat(order["delivered_at"])


@pytest.fixture
def demo(db) -> None:
    seed_demo()


def test_seeding_twice_gives_the_same_rows(db):
    seed_demo()
    counts = (Document.objects.count(), Passage.objects.count(), Record.objects.count())
    passage_ids = set(Passage.objects.values_list("id", flat=True))
    seed_demo()
    assert (Document.objects.count(), Passage.objects.count(), Record.objects.count()) == counts
    assert set(Passage.objects.values_list("id", flat=True)) == passage_ids
    assert counts[0] == 2 and counts[2] > 10


def test_the_project_seed_command_imports_the_demo_knowledge(db):
    call_command("seed", password="demo-pass-123")
    assert knowledge_record("order", "A-1001") is not None
    assert Document.objects.filter(slug="refund-policy").exists()


def test_the_policy_states_the_window_and_the_finance_threshold(demo):
    policy = Document.objects.get(slug="refund-policy")
    assert "30 days from delivery" in policy.text
    assert Decimal("500.00") == settings.STUDIOX_FINANCE_THRESHOLD
    assert f"above {settings.STUDIOX_FINANCE_THRESHOLD} EUR" in policy.text
    assert Document.objects.get(slug="refund-procedure").kind == "procedure"


def test_the_demo_cases_hold_on_the_day_the_seed_runs(demo):
    today = date.today()
    threshold = settings.STUDIOX_FINANCE_THRESHOLD

    eligible = knowledge_record("order", "A-1001")
    assert today - delivered(eligible) < WINDOW
    assert Decimal(eligible["total"]) == Decimal("120.00") <= threshold
    assert Decimal(eligible["refunded_total"]) == 0

    late = knowledge_record("order", "A-1002")
    assert today - delivered(late) > WINDOW

    refunded = knowledge_record("order", "A-1003")
    assert Decimal(refunded["refunded_total"]) == Decimal(refunded["total"])
    assert knowledge_record("payment", refunded["payment_id"])["refunds"]

    large = knowledge_record("order", "A-1004")
    assert Decimal(large["total"]) == Decimal("740.00") > threshold
    assert today - delivered(large) < WINDOW

    gift_card = knowledge_record("order", "A-1005")
    assert gift_card["items"][0]["category"] == "gift_card"

    final_sale = knowledge_record("order", "A-1006")
    assert final_sale["items"][0]["final_sale"] is True

    electronics = knowledge_record("order", "A-1007")
    assert (
        electronics["items"][0] | {"category": "electronics", "opened": True}
        == (electronics["items"][0])
    )


def test_every_demo_order_links_to_its_payment_and_customer(demo):
    for order in Record.objects.filter(type="order").values_list("data", flat=True):
        payment = knowledge_record("payment", order["payment_id"])
        assert payment["order_id"] == order["id"]
        assert Decimal(payment["amount"]) == Decimal(order["total"])
        assert knowledge_record("customer", order["customer_id"]) is not None
        assert "delivered_days_ago" not in order


def test_the_policy_answers_the_demo_cases(demo):
    for query, section in [
        ("refund window days from delivery", "Time window"),
        ("finance sign-off above threshold", "Thresholds"),
        ("gift card final sale", "Exclusions"),
        ("restocking fee opened electronics", "Restocking fees"),
        ("already refunded", "Already refunded orders"),
    ]:
        hit = knowledge_search(query=query, kind="policy", limit=1)[0]
        assert hit.citation == f"Refund policy § {section}"
