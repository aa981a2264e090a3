"""The refund form under Back-and-resubmit and several tabs: no 500, nothing started twice."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from missions.models import Mission
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db

URL = "/refunds/new/"
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def form_key(client: Client) -> str:
    response = client.get(URL)
    assert response.status_code == 200
    return KEY.search(response.text).group(1)


def details(key: str, amount: str = "42.00") -> dict:
    return {"idempotency_key": key, "order_id": "A-1001", "amount": amount, "reason": "damaged"}


def test_resubmitting_the_same_key_lands_on_the_first_mission_unless_the_details_changed(
    requester,
):
    client = logged_in(requester)
    key = form_key(client)
    submitted = client.post(URL, details(key, amount="42.00"))
    again = client.post(URL, details(key, amount="42.00"))
    first = Mission.objects.get(started_by=requester)
    assert submitted.status_code == again.status_code == 302
    assert submitted["Location"] == again["Location"] == reverse("missions:detail", args=[first.id])

    response = client.post(URL, details(key, amount="99.00"))

    assert response.status_code == 409
    assert "already submitted with different details" in response.text
    assert reverse("missions:detail", args=[first.id]) in response.text
    assert 'value="99.00"' in response.text  # what was typed is kept
    assert Mission.objects.filter(started_by=requester).count() == 1
    # The form came back with a new key: submitting it starts the changed request.
    new_key = KEY.search(response.text).group(1)
    assert new_key != key
    assert client.post(URL, details(new_key, amount="99.00")).status_code == 302
    amounts = sorted(m.input["amount"] for m in Mission.objects.filter(started_by=requester))
    assert amounts == ["42.00", "99.00"]


def test_two_tabs_opened_together_start_two_refunds(requester):
    client = logged_in(requester)
    first_tab, second_tab = form_key(client), form_key(client)
    assert first_tab != second_tab
    assert client.post(URL, details(first_tab, amount="10.00")).status_code == 302
    assert client.post(URL, details(second_tab, amount="20.00")).status_code == 302
    assert Mission.objects.filter(started_by=requester).count() == 2
