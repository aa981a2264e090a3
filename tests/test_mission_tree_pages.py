"""Missions that branch out, as people see them: the tree of missions a mission started, the
parent named on a child's page, parallel steps' progress, the list's parent filter, the admin."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from decisions.models import Decision
from missions import selectors
from missions.models import MapItem, Mission, Step
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


def mission(user, title: str, *, parent: Mission | None = None, **fields) -> Mission:
    """A mission row as the engine leaves it; a child inherits its parent's requester."""
    fields.setdefault("status", Mission.Status.RUNNING)
    return Mission.objects.create(
        type="test_count",
        version=1,
        title=title,
        input={"steps": 1},
        started_by=parent.started_by if parent else user,
        parent=parent,
        parent_step=f"start:{title}" if parent else "",
        **fields,
    )


def map_step(parent: Mission, name: str = "compare", *, total: int = 12, done: int = 7):
    """A parallel step of `total` items: `done` completed, one failed, the rest running."""
    now = timezone.now()
    Step.objects.create(
        mission=parent,
        name=name,
        position=parent.steps.count(),
        kind=Step.Kind.MAP,
        status=Step.Status.WAITING,
        idempotency_key=f"{parent.id}:{name}",
        started_at=now,
    )
    for index in range(total):
        if index < done:
            status, error = MapItem.Status.COMPLETED, ""
        elif index == done:
            status, error = MapItem.Status.FAILED, "Bank feed timed out"
        else:
            status, error = MapItem.Status.RUNNING, ""
        MapItem.objects.create(
            mission=parent,
            step_name=name,
            index=index,
            label=f"Account {index + 1:02d}",
            status=status,
            attempts=3 if error else 1,
            error=error,
            idempotency_key=f"{parent.id}:{name}:{index}",
            started_at=now,
            finished_at=now + timedelta(seconds=2) if status != "running" else None,
        )


class Tree(HTMLParser):
    """Which mission's <li> sits inside which, and each one's data-status."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.parent_of: dict[str, str | None] = {}
        self.status: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        if tag != "li":
            return
        found = dict(attrs)
        mission_id = found.get("data-mission-id")
        if mission_id:
            enclosing = [m for m in self.stack if m]
            self.parent_of[mission_id] = enclosing[-1] if enclosing else None
            self.status[mission_id] = found.get("data-status", "")
        self.stack.append(mission_id)

    def handle_endtag(self, tag):
        if tag == "li" and self.stack:
            self.stack.pop()


def section(text: str, heading_id: str) -> str:
    start = text.index(f'aria-labelledby="{heading_id}"')
    return text[start : text.index("</section>", start)]


def tree_of(text: str) -> Tree:
    tree = Tree()
    tree.feed(section(text, "children-heading"))
    return tree


def page(user, target: Mission, **query) -> str:
    response = logged_in(user).get(reverse("missions:detail", args=[target.id]), query)
    assert response.status_code == 200
    return response.text


@pytest.fixture
def family(requester):
    """A parent with three children, the first of which started one of its own."""
    parent = mission(requester, "Month-end close")
    bank = mission(
        None,
        "Bank reconciliation",
        parent=parent,
        status=Mission.Status.WAITING,
        waiting_on=Mission.WaitingOn.DECISION,
        waiting_detail="Approve the write-off",
        waiting_since=timezone.now(),
    )
    cards = mission(None, "Card reconciliation", parent=parent, current_step="match_receipts")
    payroll = mission(None, "Payroll check", parent=parent, status=Mission.Status.SUCCEEDED)
    fx = mission(None, "FX revaluation", parent=bank, current_step="fetch_rates")
    return parent, bank, cards, payroll, fx


def test_a_parent_page_shows_its_children_as_a_tree(requester, family):
    parent, bank, cards, payroll, fx = family
    text = page(requester, parent)
    tree = tree_of(text)
    assert tree.parent_of == {
        str(bank.id): None,
        str(cards.id): None,
        str(payroll.id): None,
        str(fx.id): str(bank.id),  # a grandchild sits under its own parent
    }
    assert tree.status[str(bank.id)] == "waiting"
    assert tree.status[str(payroll.id)] == "succeeded"
    children = section(text, "children-heading")
    assert "Decision: Approve the write-off" in children  # what the child waits on
    assert "match_receipts" in children  # where a running child is
    assert reverse("missions:detail", args=[fx.id]) in children


def test_a_child_page_names_the_mission_that_started_it(requester, family):
    parent, bank, *_ = family
    text = page(requester, bank)
    started = text[text.index('data-testid="parent-mission"') :].split("</dd>")[0]
    assert "Month-end close" in started
    assert reverse("missions:detail", args=[parent.id]) in started
    assert "start:Bank reconciliation" in started  # the parent's step that started it
    assert str(bank.id) not in tree_of(text).parent_of  # the child is not its own child
    assert page(requester, parent).count('data-testid="parent-mission"') == 0


def test_a_mission_without_children_shows_no_tree(requester):
    text = page(requester, mission(requester, "Alone"))
    assert 'aria-labelledby="children-heading"' not in text


def test_the_tree_is_cut_in_depth_and_width_and_says_how_many_more(requester, monkeypatch):
    monkeypatch.setattr(selectors, "TREE_CHILDREN_SHOWN", 4)
    root = mission(requester, "Root")
    wide = [mission(None, f"Child {n}", parent=root) for n in range(7)]
    chain = [wide[0]]
    for level in range(selectors.TREE_DEPTH + 2):
        chain.append(mission(None, f"Level {level}", parent=chain[-1]))
    text = page(requester, root)
    tree = tree_of(text)
    shown_children = [m for m in wide if str(m.id) in tree.parent_of]
    assert shown_children == wide[:4]
    box = section(text, "children-heading")
    assert "and 3 more" in box
    assert f"?parent={root.id}" in box  # the rest are one click away, on the list
    # Three levels below the root are shown; the fourth level is a count and a link.
    assert str(chain[selectors.TREE_DEPTH - 1].id) in tree.parent_of
    assert str(chain[selectors.TREE_DEPTH].id) not in tree.parent_of
    assert "1 child mission<" in box
    assert f"?parent={chain[selectors.TREE_DEPTH - 1].id}" in box


def test_the_tree_reads_a_constant_number_of_queries(requester, django_assert_max_num_queries):
    root = mission(requester, "Root")
    for n in range(3):
        child = mission(None, f"Child {n}", parent=root)
        mission(None, f"Grandchild {n}", parent=child)
    # Two per level and one past the last; up to three more for the reader's permissions.
    with django_assert_max_num_queries(2 * selectors.TREE_DEPTH + 1 + 3) as few:
        tree = selectors.mission_tree(user=requester, mission=root)
    assert len(tree.children) == 3
    for n in range(3, 40):
        child = mission(None, f"Child {n}", parent=root)
        mission(None, f"Grandchild {n}", parent=child)
    with django_assert_max_num_queries(len(few.captured_queries)):
        tree = selectors.mission_tree(user=requester, mission=root)
    assert len(tree.children) == selectors.TREE_CHILDREN_SHOWN
    assert tree.more == 40 - selectors.TREE_CHILDREN_SHOWN


def test_the_page_costs_the_same_queries_for_a_small_or_large_family(
    requester, django_assert_max_num_queries
):
    root = mission(requester, "Root")
    map_step(root, total=3, done=1)
    client = logged_in(requester)
    url = reverse("missions:detail", args=[root.id])
    mission(None, "Grandchild", parent=mission(None, "Child", parent=root))
    client.get(url)
    with django_assert_max_num_queries(40) as few:
        client.get(url)
    for n in range(30):
        mission(None, f"Grandchild {n}", parent=mission(None, f"Child {n}", parent=root))
    map_step(root, name="second", total=40, done=20)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(url).status_code == 200


def test_a_map_step_shows_how_many_items_are_done_and_each_items_state(requester):
    parent = mission(requester, "Reconcile accounts")
    map_step(parent, total=12, done=7)
    text = page(requester, parent)
    progress = section(text, "map-heading")
    assert 'data-map-step="compare"' in progress
    assert 'data-done="7" data-total="12"' in progress
    assert "7 of 12 done" in progress
    assert "1 failed" in progress
    assert progress.count('data-item-status="completed"') == 7
    assert progress.count('data-item-status="running"') == 4
    assert "Account 08" in progress
    assert "Bank feed timed out" in progress  # the failed item's error
    steps = text[text.index('<tr data-step="compare">') :].split("</tr>")[0]
    assert "7 of 12 done" in steps  # the step's row says it too


def test_map_progress_counts_every_item_and_lists_the_first(requester, monkeypatch):
    parent = mission(requester, "Big fan-out")
    map_step(parent, total=30, done=10)
    monkeypatch.setattr(selectors, "MAP_ITEMS_SHOWN", 5)
    (progress,) = selectors.map_progress(mission=parent)
    assert (progress.total, progress.done, progress.failed, progress.in_flight) == (30, 10, 1, 19)
    assert [item.index for item in progress.items] == [0, 1, 2, 3, 4]
    assert progress.more == 25


def test_a_page_refresh_carries_the_tree_and_the_progress(requester, family):
    parent = family[0]
    map_step(parent)
    response = logged_in(requester).get(
        reverse("missions:detail", args=[parent.id]), headers={"HX-Request": "true"}
    )
    assert response.text.lstrip().startswith('<div id="mission-live"')
    assert 'aria-labelledby="children-heading"' in response.text
    assert "7 of 12 done" in response.text


def test_children_are_visible_to_whoever_sees_the_parent_and_no_one_else(
    requester, outsider, family
):
    for member in family:  # children inherit the requester
        assert selectors.mission_get_for(user=requester, mission_id=member.id) == member
        response = logged_in(outsider).get(reverse("missions:detail", args=[member.id]))
        assert response.status_code == 404


def test_the_tree_holds_only_missions_the_reader_may_see(requester, supervisor):
    parent = mission(requester, "Refund batch")
    seen = mission(None, "Refund A-1", parent=parent)
    unseen = mission(None, "Refund A-2", parent=parent)
    mission(None, "Refund A-2 payout", parent=unseen)
    role = supervisor.groups.get()
    for target in (parent, seen):
        Decision.objects.create(mission=target, step_name="approve", role=role, title="Approve")
    tree = tree_of(page(supervisor, parent))
    assert tree.parent_of == {str(seen.id): None}
    full = tree_of(page(requester, parent))
    assert len(full.parent_of) == 3


def test_the_list_marks_child_missions_and_filters_by_parent(requester, family):
    parent, bank, cards, payroll, fx = family
    client = logged_in(requester)
    text = client.get(reverse("missions:list")).text
    row = text[text.index(reverse("missions:detail", args=[fx.id])) :].split("</tr>")[0]
    assert f'data-parent="{bank.id}"' in row
    listed = client.get(reverse("missions:list"), {"parent": str(parent.id)}).text
    ids = {
        m.id for m in family if f'{reverse("missions:detail", args=[m.id])}">{m.title}' in listed
    }
    assert ids == {bank.id, cards.id, payroll.id}
    assert "3 missions" in listed
    assert f'name="parent" value="{parent.id}"' in listed  # kept by the filter form
    for junk in ("not-a-uuid", "' OR 1=1", "0" * 500):
        response = client.get(reverse("missions:list"), {"parent": junk})
        assert response.status_code == 200
        assert "5 missions" in response.text  # a malformed parent is no filter


def test_the_admin_shows_parent_children_and_map_items(admin_client, family):
    parent, bank, cards, payroll, fx = family
    map_step(parent)
    text = admin_client.get(reverse("admin:missions_mission_change", args=[parent.id])).text
    for child in (bank, cards, payroll):
        assert reverse("admin:missions_mission_change", args=[child.id]) in text
    assert "Account 12" in text  # the map items inline
    assert "Bank feed timed out" in text
    assert 'name="map_items-0-status"' not in text  # read-only
    child_page = admin_client.get(reverse("admin:missions_mission_change", args=[bank.id])).text
    assert reverse("admin:missions_mission_change", args=[parent.id]) in child_page
    assert "start:Bank reconciliation" in child_page
    changelist = admin_client.get(
        reverse("admin:missions_mission_changelist"), {"parent__exact": str(parent.id)}
    )
    assert changelist.status_code == 200
    assert str(bank.id)[:8] in changelist.text
    assert str(fx.id)[:8] not in changelist.text


def test_map_items_have_a_read_only_admin_filtered_by_status_and_searched_by_mission(
    admin_client, requester
):
    first = mission(requester, "First")
    second = mission(requester, "Second")
    map_step(first, total=3, done=1)
    map_step(second, name="score", total=2, done=2)
    changelist = reverse("admin:missions_mapitem_changelist")
    assert admin_client.get(changelist).status_code == 200
    failed = admin_client.get(changelist, {"status__exact": "failed"}).text
    assert "compare:1" in failed and "compare:0" not in failed
    found = admin_client.get(changelist, {"q": str(second.id)}).text
    assert "score:0" in found and "compare:0" not in found
    item = MapItem.objects.get(mission=first, index=1)
    detail = admin_client.get(reverse("admin:missions_mapitem_change", args=[item.id]))
    assert detail.status_code == 200
    assert 'name="status"' not in detail.text
    assert admin_client.get(reverse("admin:missions_mapitem_add")).status_code == 403
    assert str(item) == "compare:1 (failed)"
