"""Finding missions and decisions by their business keys (order, customer, amount, requester)
on the web, in the admin and in the API, the keys and amount in the mission list, and the CSV
exports of the filtered lists (docs/authoring.md, docs/api.md)."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from pydantic import BaseModel

from decisions.models import Decision
from decisions.selectors import decision_queue
from missions.models import Mission
from missions.runtime import get_definition, mission
from missions.search import mission_amount, mission_business_keys
from missions.selectors import mission_list
from missions.services import mission_start
from showcases.refund.seed import seed_demo
from studiox.csv_export import csv_cell
from tests.conftest import make_user
from tests.support.api import api_client, fresh_throttles  # noqa: F401
from tests.support.engine import drain
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


class OrderInput(BaseModel):
    order_id: str
    customer: str = ""
    amount: Decimal = Decimal("0")
    note: str = ""


@mission(
    "search_test_order",
    version=1,
    title="Order check",
    input=OrderInput,
    searchable=("order_id", "customer"),
    amount="amount",
    currency="EUR",
)
def order_check(ctx, data: OrderInput) -> dict:
    """Asks a supervisor about the order (in-process tests only)."""
    decided = ctx.wait_for_decision(
        "approval", role="supervisor", title=f"Approve the check of {data.note or 'an order'}"
    )
    return {"outcome": decided.outcome}


class NoteInput(BaseModel):
    order_id: str = ""


@mission("search_test_note", version=1, title="Note", input=NoteInput)
def note(ctx, data: NoteInput) -> dict:
    """Declares nothing searchable: its order_id must not match a search."""
    return {"outcome": "noted"}


def order(user, order_id: str, *, customer: str = "", amount: str = "10.00", note: str = ""):
    """A mission of the searchable type, started and waiting for the supervisor."""
    started = mission_start(
        type="search_test_order",
        input={"order_id": order_id, "customer": customer, "amount": amount, "note": note},
        started_by=user,
    ).mission
    return drain(started)


def found(user, term: str) -> set:
    return {m.id for m in mission_list(user=user, search=term)}


def parsed(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


# --- Declaring keys -------------------------------------------------------------------------


def test_a_misspelt_searchable_field_fails_at_import():
    with pytest.raises(ValueError, match="'orderid' is not a field of its input"):
        mission("search_test_typo", input=OrderInput, searchable=("orderid",))(order_check)
    with pytest.raises(ValueError, match="'total' is not a field"):
        mission("search_test_typo", input=OrderInput, amount="total")(order_check)
    assert get_definition("search_test_typo") is None


def test_the_showcases_declare_their_business_keys():
    refund = get_definition("customer_refund")
    assert (refund.searchable, refund.amount, refund.currency) == (
        ("order_id", "customer_id"),
        "amount",
        "EUR",
    )
    assert get_definition("quarterly_reconciliation").searchable == ("quarter",)
    assert get_definition("ledger_reconciliation").searchable == ("system", "quarter")


def test_a_refund_from_the_form_is_found_by_its_customer(requester):
    seed_demo()
    client = logged_in(requester)
    form = client.get("/refunds/new/").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
    details = {"idempotency_key": key, "order_id": "A-1004", "amount": "740.00", "reason": "bent"}
    assert client.post("/refunds/new/", details).status_code == 302
    refund = Mission.objects.get(type="customer_refund")
    assert refund.input["customer_id"] == "C-504"
    assert found(requester, "c-504") == {refund.id}
    assert str(mission_amount(refund)) == "740.00 EUR"


# --- Selectors (run on PostgreSQL and SQLite alike) ----------------------------------------


def test_missions_are_found_by_each_declared_key_and_the_amount(requester):
    wanted = order(requester, "A-1004", customer="C-504", amount="740.00")
    other = order(requester, "B-2001", customer="C-777", amount="12.50")
    assert found(requester, "A-1004") == {wanted.id}
    assert found(requester, "a-100") == {wanted.id}  # any case, any part of the value
    assert found(requester, "c-504") == {wanted.id}
    assert found(requester, "740") == {wanted.id}
    assert found(requester, "12.5") == {other.id}
    assert found(requester, "C-") == {wanted.id, other.id}
    assert found(requester, "no such key") == set()


def test_a_field_not_declared_searchable_does_not_match(requester):
    order(requester, "A-1", note="secret-marker")
    mission_start(type="search_test_note", input={"order_id": "A-1004"}, started_by=requester)
    assert found(requester, "secret-marker") == set()
    assert found(requester, "A-1004") == set()


def test_missions_are_found_by_requester_title_and_id_prefix(requester):
    mine = order(requester, "A-1")
    alice = make_user("alice", is_superuser=True)
    hers = order(alice, "A-2")
    assert found(alice, "requester") == {mine.id}
    assert found(alice, "Order check") == {mine.id, hers.id}
    assert found(alice, str(hers.id)[:8]) == {hers.id}
    assert found(alice, str(hers.id)[:8].upper()) == {hers.id}


def test_a_search_never_shows_a_mission_the_user_may_not_see(requester, outsider):
    order(requester, "A-1004")
    assert found(outsider, "A-1004") == set()


def test_decisions_are_found_by_their_missions_keys_and_requester(requester, supervisor):
    wanted = order(requester, "A-1004", customer="C-504", amount="740.00", note="the vase")
    order(make_user("bob"), "B-2001", customer="C-777")
    [decision] = Decision.objects.filter(mission=wanted)

    def queue(term: str, view: str = "queue") -> set:
        return {d.id for d in decision_queue(user=supervisor, view=view, search=term)}

    assert queue("A-1004") == {decision.id}
    assert queue("c-504") == {decision.id}
    assert queue("740.00") == {decision.id}
    assert queue("requester") == {decision.id}
    assert queue("the vase") == {decision.id}  # the decision's own title
    assert decision.id in queue(str(decision.id))  # its number (other keys may hold it too)
    assert queue("A-1004", view="archive") == set()


def test_the_list_shows_the_declared_keys_and_the_amount_as_a_decimal(requester):
    wanted = order(requester, "A-1004", customer="C-504", amount="740.00")
    assert [(k.label, k.value) for k in mission_business_keys(wanted)] == [
        ("Order id", "A-1004"),
        ("Customer", "C-504"),
    ]
    amount = mission_amount(wanted)
    assert amount.value == Decimal("740.00") and isinstance(amount.value, Decimal)
    assert str(amount) == "740.00 EUR"


# --- Web pages ------------------------------------------------------------------------------


def test_the_missions_page_searches_and_shows_keys_and_amount(requester):
    order(requester, "A-1004", customer="C-504", amount="740.00")
    order(requester, "B-2001")
    response = logged_in(requester).get(reverse("missions:list"), {"q": "A-1004"})
    assert response.status_code == 200
    assert response.text.count('data-key="order_id"') == 1
    assert 'data-key="customer"' in response.text and "C-504" in response.text
    assert "740.00 EUR" in response.text
    assert "B-2001" not in response.text
    assert "format=csv" in response.text and "q=A-1004" in response.text


def test_the_missions_pages_keep_the_search_in_their_links(requester):
    for n in range(27):
        order(requester, f"A-{n:04d}")
    order(requester, "Z-1")
    response = logged_in(requester).get(reverse("missions:list"), {"q": "A-0"})
    assert "27 missions" in response.text
    assert "?q=A-0&amp;page=2" in response.text


def test_the_decision_queue_searches_and_keeps_the_search_in_its_links(requester, supervisor):
    for n in range(22):
        order(requester, f"A-{n:04d}")
    order(requester, "Z-1", note="the odd one")
    client = logged_in(supervisor)
    response = client.get(reverse("decisions:queue"), {"q": "A-0"})
    assert response.status_code == 200
    assert "22 decisions in My queue" in response.text
    assert "the odd one" not in response.text
    assert "q=A-0&amp;page=2" in response.text
    response = client.get(reverse("decisions:queue"), {"q": "Z-1"})
    assert "1 decision in My queue" in response.text and "the odd one" in response.text
    empty = client.get(reverse("decisions:queue"), {"q": "nothing like it"})
    assert "No decision here matches" in empty.text


# --- API ------------------------------------------------------------------------------------


def test_the_api_searches_missions_with_q(requester, outsider):
    wanted = order(requester, "A-1004", customer="C-504")
    order(requester, "B-2001")
    response = api_client(requester).get("/api/missions/", {"q": "A-1004"})
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["results"]] == [str(wanted.id)]
    assert api_client(outsider).get("/api/missions/", {"q": "A-1004"}).json()["results"] == []
    too_long = api_client(requester).get("/api/missions/", {"q": "x" * 101})
    assert too_long.status_code == 400
    assert "q" in too_long.json()["errors"]


def test_the_api_searches_decisions_with_q(requester, supervisor):
    wanted = order(requester, "A-1004", customer="C-504")
    order(requester, "B-2001")
    [decision] = Decision.objects.filter(mission=wanted)
    response = api_client(supervisor).get("/api/decisions/", {"q": "c-504"})
    assert response.status_code == 200
    assert [d["id"] for d in response.json()] == [decision.id]


def test_the_openapi_schema_documents_q():
    document = Client().get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/missions/", "/api/decisions/"):
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        assert "business keys" in parameters["q"]["description"], path


# --- Admin ----------------------------------------------------------------------------------


def test_the_admin_finds_missions_and_decisions_by_business_key(requester, admin_user):
    # Keys that are not hexadecimal: the admin also searches mission ids, and a random id
    # holds "a1004" (dashes dropped) about once in 400 runs.
    wanted = order(requester, "X-1004", customer="K-504")
    other = order(requester, "B-2001")
    client = logged_in(admin_user)
    response = client.get("/admin/missions/mission/", {"q": "K-504"})
    assert response.status_code == 200
    assert f"/admin/missions/mission/{wanted.id}/change/" in response.text
    assert f"/admin/missions/mission/{other.id}/change/" not in response.text
    assert "10.00 EUR" in response.text  # the amount column
    [decision] = Decision.objects.filter(mission=wanted)
    response = client.get("/admin/decisions/decision/", {"q": "X-1004"})
    assert response.status_code == 200
    assert f"/admin/decisions/decision/{decision.id}/change/" in response.text
    [other_decision] = Decision.objects.filter(mission=other)
    assert f"/admin/decisions/decision/{other_decision.id}/change/" not in response.text


def test_the_admin_exports_selected_missions_as_csv(requester, admin_user):
    wanted = order(requester, "A-1004", amount="740.00")
    response = logged_in(admin_user).post(
        "/admin/missions/mission/",
        {"action": "export_csv", "_selected_action": [str(wanted.id)]},
    )
    [row] = parsed(response)
    assert (row["id"], row["order_id"], row["amount"]) == (str(wanted.id), "A-1004", "740.00")


# --- CSV exports ----------------------------------------------------------------------------


def test_the_missions_csv_holds_the_filtered_list_with_keys_amounts_and_utc_times(requester):
    wanted = order(requester, "A-1004", customer="C-504", amount="740.00")
    order(requester, "B-2001")
    response = logged_in(requester).get(reverse("missions:list"), {"q": "A-1004", "format": "csv"})
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    [row] = parsed(response)
    assert (row["id"], row["type"], row["status"]) == (
        str(wanted.id),
        "search_test_order",
        "waiting",
    )
    assert (row["order_id"], row["customer"], row["amount"], row["currency"]) == (
        "A-1004",
        "C-504",
        "740.00",
        "EUR",
    )
    assert row["requested_by"] == "requester"
    assert row["created_at"].endswith("Z") and row["created_at"].startswith(
        wanted.created_at.strftime("%Y-%m-%dT%H:%M")
    )
    assert row["finished_at"] == ""


def test_the_csv_cannot_smuggle_a_formula_into_a_spreadsheet(requester):
    order(requester, '=HYPERLINK("http://evil")', customer="@SUM(A1)", note="+1")
    order(requester, "-2+3")
    rows = parsed(logged_in(requester).get(reverse("missions:list"), {"format": "csv"}))
    cells = {row["order_id"] for row in rows} | {row["customer"] for row in rows}
    assert '\'=HYPERLINK("http://evil")' in cells
    assert "'@SUM(A1)" in cells
    assert "'-2+3" in cells
    for value in ("=1", "+1", "-1", "@x", "\t=1", "\r=1"):
        assert csv_cell(value).startswith("'"), value
    assert csv_cell(Decimal("-12.50")) == "-12.50"  # a number stays a number
    assert csv_cell("A-1004") == "A-1004"


def test_a_csv_shows_only_what_its_page_shows(requester, outsider, supervisor):
    wanted = order(requester, "A-1004")
    [decision] = Decision.objects.filter(mission=wanted)
    assert parsed(logged_in(outsider).get(reverse("missions:list"), {"format": "csv"})) == []
    assert parsed(logged_in(outsider).get(reverse("decisions:queue"), {"format": "csv"})) == []
    assert (
        logged_in(outsider).get(reverse("decisions:audit_csv", args=[decision.id])).status_code
        == 404
    )
    anonymous = Client().get(reverse("missions:list"), {"format": "csv"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    assert Client().get(reverse("decisions:audit_csv", args=[decision.id])).status_code == 302
    [row] = parsed(logged_in(supervisor).get(reverse("decisions:queue"), {"format": "csv"}))
    assert (row["id"], row["order_id"], row["role"]) == (str(decision.id), "A-1004", "supervisor")


def test_the_decisions_csv_follows_the_search_and_the_audit_csv_the_trail(requester, supervisor):
    wanted = order(requester, "A-1004", amount="740.00")
    order(requester, "B-2001")
    [decision] = Decision.objects.filter(mission=wanted)
    client = logged_in(supervisor)
    [row] = parsed(client.get(reverse("decisions:queue"), {"q": "A-1004", "format": "csv"}))
    assert (row["mission_id"], row["amount"], row["requested_by"]) == (
        str(wanted.id),
        "740.00",
        "requester",
    )
    assert row["created_at"].endswith("Z")
    client.post(reverse("decisions:decide", args=[decision.id]), {"outcome": "approved"})
    trail = parsed(client.get(reverse("decisions:audit_csv", args=[decision.id])))
    assert [entry["action"] for entry in trail] == ["opened", "approved"]
    assert trail[-1]["user"] == "supervisor" and trail[-1]["at"].endswith("Z")
    assert {entry["decision_id"] for entry in trail} == {str(decision.id)}
    [archived] = parsed(
        client.get(reverse("decisions:queue"), {"view": "archive", "format": "csv"})
    )
    assert (archived["id"], archived["outcome"], archived["decided_by"]) == (
        str(decision.id),
        "approved",
        "supervisor",
    )


def test_each_list_links_to_its_csv(requester, supervisor):
    wanted = order(requester, "A-1004")
    [decision] = Decision.objects.filter(mission=wanted)
    client = logged_in(supervisor)
    queue = client.get(reverse("decisions:queue"), {"q": "A-1004"}).text
    assert 'data-testid="decisions-csv"' in queue and "format=csv" in queue
    detail = client.get(reverse("decisions:detail", args=[decision.id])).text
    assert reverse("decisions:audit_csv", args=[decision.id]) in detail
    assert Mission.objects.filter(id=wanted.id).exists()
