"""Importing documents (split into passages) and records, and looking records up."""

import json

import pytest

from knowledge.markdown import MAX_PASSAGE_CHARS
from knowledge.models import Document, Passage, Record
from knowledge.services import (
    ImportRefused,
    document_import,
    knowledge_record,
    knowledge_search,
    records_import,
)

POLICY = """# Returns policy

Applies to every shop.

## Window

Thirty days from delivery.

## Exceptions

### Gift cards

Never refunded.

```
# not a heading, just a comment in a code block
```

## Empty

## Fees

A restocking fee of 10%.
"""


def sections(document: Document) -> list[tuple[int, str]]:
    return list(document.passages.values_list("position", "section"))


def test_it_splits_a_document_into_passages_by_heading_path(db):
    document = document_import(title="Returns policy", text=POLICY, kind="policy")
    assert document.slug == "returns-policy"
    assert sections(document) == [
        (0, "Returns policy"),
        (1, "Returns policy > Window"),
        (2, "Returns policy > Exceptions > Gift cards"),
        (3, "Returns policy > Fees"),
    ]
    gift_cards = document.passages.get(position=2)
    assert gift_cards.text.startswith("Never refunded.")
    assert "# not a heading" in gift_cards.text


def test_a_long_section_becomes_several_passages(db):
    paragraphs = "\n\n".join(f"Paragraph {n}. " + "words " * 60 for n in range(12))
    document = document_import(title="Long", text=f"# Long\n\n## Body\n\n{paragraphs}")
    passages = list(document.passages.all())
    assert len(passages) > 1
    assert {p.section for p in passages} == {"Long > Body"}
    assert all(len(p.text) <= MAX_PASSAGE_CHARS for p in passages)
    assert "Paragraph 11." in passages[-1].text


def test_importing_the_same_text_again_changes_nothing(db):
    first = document_import(title="Returns policy", text=POLICY)
    passage_ids = list(first.passages.values_list("id", flat=True))
    again = document_import(title="Returns policy", text=POLICY)
    assert again.pk == first.pk
    assert again.imported_at == first.imported_at
    assert list(again.passages.values_list("id", flat=True)) == passage_ids
    assert (Document.objects.count(), Passage.objects.count()) == (1, 4)


def test_changed_text_replaces_every_passage(db):
    first = document_import(title="Returns policy", text=POLICY)
    old_ids = set(first.passages.values_list("id", flat=True))
    changed = POLICY.replace("Thirty days", "Sixty days").replace("## Fees", "## Charges")
    again = document_import(title="Returns policy", text=changed)
    assert again.pk == first.pk
    assert again.content_hash != first.content_hash
    assert not old_ids & set(Passage.objects.values_list("id", flat=True))
    assert sections(again)[-1] == (3, "Returns policy > Charges")
    assert Passage.objects.count() == 4
    assert knowledge_search(query="sixty")[0].citation == "Returns policy § Window"
    assert knowledge_search(query="thirty") == []


def test_a_new_title_or_kind_alone_keeps_the_passages(db):
    first = document_import(title="Returns policy", text=POLICY)
    passage_ids = list(first.passages.values_list("id", flat=True))
    again = document_import(
        title="Return rules", text=POLICY, slug="returns-policy", kind="procedure"
    )
    assert (again.title, again.kind) == ("Return rules", "procedure")
    assert list(again.passages.values_list("id", flat=True)) == passage_ids


def test_it_refuses_an_unknown_kind_or_a_title_without_a_slug(db):
    with pytest.raises(ImportRefused, match="kind"):
        document_import(title="Returns", text=POLICY, kind="memo")
    with pytest.raises(ImportRefused, match="slug"):
        document_import(title="???", text=POLICY)
    assert not Document.objects.exists()


ORDERS = [
    {"id": "A-1", "total": "10.00", "status": "delivered"},
    {"id": "A-2", "total": "20.00", "status": "delivered"},
]


def test_records_are_upserted_by_key(db):
    assert records_import(type="order", rows=ORDERS) == 2
    assert records_import(type="order", rows=ORDERS) == 2
    assert Record.objects.count() == 2
    records_import(type="order", rows=[{**ORDERS[0], "status": "refunded"}])
    assert Record.objects.count() == 2
    assert knowledge_record("order", "A-1")["status"] == "refunded"
    assert knowledge_record("order", "A-2")["status"] == "delivered"


def test_the_same_key_may_exist_under_another_type(db):
    records_import(type="order", rows=[{"id": "X-1", "total": "5.00"}])
    records_import(type="payment", rows=[{"id": "X-1", "amount": "5.00"}])
    assert knowledge_record("order", "X-1")["total"] == "5.00"
    assert knowledge_record("payment", "X-1")["amount"] == "5.00"


def test_records_can_be_keyed_by_another_field_and_numbers(db):
    records_import(type="customer", rows=[{"number": 501, "name": "Ada"}], key_field="number")
    assert knowledge_record("customer", "501")["name"] == "Ada"


@pytest.mark.parametrize("rows", [[{"total": "1.00"}], [{"id": ""}], ["A-1"]])
def test_records_without_a_key_are_refused_and_nothing_is_imported(db, rows):
    with pytest.raises(ImportRefused):
        records_import(type="order", rows=[ORDERS[0], *rows])
    assert not Record.objects.exists()


def test_a_record_lookup_returns_json_with_its_type_and_key(db):
    records_import(type="order", rows=ORDERS)
    order = knowledge_record("order", "A-1")
    assert order == {
        "id": "A-1",
        "total": "10.00",
        "status": "delivered",
        "type": "order",
        "key": "A-1",
    }
    assert json.loads(json.dumps(order)) == order


def test_a_missing_record_is_none(db):
    records_import(type="order", rows=ORDERS)
    assert knowledge_record("order", "A-404") is None
    assert knowledge_record("payment", "A-1") is None
