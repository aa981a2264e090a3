"""Full-text search over passages, on the database's own index (SQLite FTS5 or PostgreSQL)."""

import json

import pytest

from knowledge.services import (
    PassageHit,
    document_delete,
    document_import,
    knowledge_search,
    knowledge_search_json,
)
from showcases.refund.seed import seed_demo


@pytest.fixture
def demo(db) -> None:
    seed_demo()


@pytest.mark.parametrize(
    ("query", "citation"),
    [
        ("refund time window after delivery", "Refund policy § Time window"),
        (
            "How many days after delivery can a customer ask for a refund?",
            "Refund policy § Time window",
        ),
        ("refunds above 500 EUR", "Refund policy § Thresholds"),
        ("gift cards final sale exclusions", "Refund policy § Exclusions"),
        ("restocking fee for opened electronics", "Refund policy § Restocking fees"),
        ("order already refunded", "Refund policy § Already refunded orders"),
        ("partial refund remaining amount", "Refund policy § Already refunded orders"),
    ],
)
def test_it_ranks_the_section_that_answers_first(demo, query, citation):
    hits = knowledge_search(query=query)
    assert hits[0].citation == citation
    assert [hit.rank for hit in hits] == sorted((hit.rank for hit in hits), reverse=True)


def test_a_hit_carries_its_passage_and_citation(demo):
    hit = knowledge_search(query="refund time window", limit=1)[0]
    assert isinstance(hit, PassageHit)
    assert hit.document_title == "Refund policy"
    assert hit.document_slug == "refund-policy"
    assert hit.section == "Refund policy > Time window"
    assert "30 days from delivery" in hit.text
    assert hit.rank > 0


def test_it_returns_at_most_limit_hits(demo):
    assert len(knowledge_search(query="refund", limit=2)) == 2
    assert len(knowledge_search(query="refund", limit=50)) == 11
    assert knowledge_search(query="refund", limit=0) == []


def test_it_can_keep_to_one_kind_of_document(demo):
    hits = knowledge_search(query="finance sign-off", kind="procedure")
    assert hits
    assert {hit.document_slug for hit in hits} == {"refund-procedure"}
    assert {hit.document_slug for hit in knowledge_search(query="finance", kind="policy")} == {
        "refund-policy"
    }


def test_headings_weigh_more_than_text(db):
    document_import(
        title="Shipping",
        text="# Shipping\n\n## Lost parcels\n\nOpen an investigation with the carrier.\n",
    )
    document_import(
        title="Returns",
        text="# Returns\n\n## Labels\n\nPrint the label. Parcels that were lost are handled "
        "elsewhere; returns need the original packaging and a printed label.\n",
    )
    assert knowledge_search(query="lost parcels")[0].citation == "Shipping § Lost parcels"


def test_it_finds_word_forms(db):
    document_import(title="Care", text="# Care\n\n## Washing\n\nWash the covers at 30 degrees.")
    assert knowledge_search(query="washed cover")[0].citation == "Care § Washing"


def test_citations_name_the_document_and_the_section_path(db):
    document_import(
        title="Warranty",
        text="Applies to all products.\n\n# Terms\n\n## Batteries\n\nSix months of battery cover.",
    )
    assert knowledge_search(query="products")[0].citation == "Warranty"
    assert knowledge_search(query="battery")[0].citation == "Warranty § Terms > Batteries"


def test_it_finds_only_the_current_text_of_a_document(db):
    document = document_import(title="Animals", text="# Animals\n\nThe zebra crossing.")
    assert len(knowledge_search(query="zebra")) == 1
    document_import(title="Animals", text="# Animals\n\nThe giraffe crossing.")
    assert knowledge_search(query="zebra") == []
    assert len(knowledge_search(query="giraffe")) == 1
    document_delete(document=document)
    assert knowledge_search(query="giraffe") == []


def test_it_asks_the_database_and_does_not_load_passages(demo, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        assert knowledge_search(query="refund window")


def test_the_json_form_is_what_a_mission_step_records(demo):
    hits = knowledge_search_json("refund time window", 2)
    assert json.loads(json.dumps(hits)) == hits
    assert hits[0]["citation"] == "Refund policy § Time window"
    assert set(hits[0]) == {
        "passage_id",
        "document_title",
        "document_slug",
        "section",
        "text",
        "rank",
        "citation",
    }


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        '"',
        "'",
        '"refund',
        "refund*",
        "NEAR(refund window)",
        "refund AND",
        "OR",
        "NOT refund",
        "-refund",
        "(",
        ")",
        "^refund",
        "section:refund",
        "refund' OR 1=1 --",
        "%_%",
        "\\",
        "{}[]<>!&|:",
        "\x00",
        "refund\x00window",
        "💸 Rückerstattung ½ ǅ",
        "the of and",
        "a" * 5000,
        " ".join(["refund"] * 500),
    ],
)
def test_odd_queries_never_raise(demo, query):
    hits = knowledge_search(query=query)
    assert isinstance(hits, list)
    assert len(hits) <= 5


def test_syntax_characters_are_read_as_plain_words(demo):
    assert knowledge_search(query='"time" window*')[0].citation == "Refund policy § Time window"
    assert knowledge_search(query="") == []
