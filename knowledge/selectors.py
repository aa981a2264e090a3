"""Reads: full-text search over passages (the database's own index) and record look-up."""

import operator
import re
from dataclasses import asdict, dataclass
from functools import reduce

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import F

from knowledge.markdown import SECTION_SEPARATOR
from knowledge.models import Document, Passage, Record

SEARCH_CONFIG = "english"
MAX_TERMS = 32
MAX_LIMIT = 50
# Dropped on both databases so that SQLite (no stop words in FTS5) ranks like PostgreSQL.
_STOP_WORDS = (
    "a an and are as at be but by can do does for from had has have how i if in into is it its"
    " me my no not of on or our so that the their then there these they this to was we were"
    " what when where which who why will with you your"
)
STOP_WORDS = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True)
class PassageHit:
    """A passage that matched a search, with what a step needs to cite it."""

    passage_id: int
    document_title: str
    document_slug: str
    section: str
    text: str
    rank: float  # higher is better; comparable within one search only
    citation: str  # e.g. "Refund policy § Time window"

    def to_json(self) -> dict:
        return asdict(self)


def search_terms(query: str) -> list[str]:
    """Plain lowercase words of `query`: no operators, quotes or syntax reach the index."""
    words = re.findall(r"\w+", query.lower()[:2000])
    terms = [w for w in dict.fromkeys(words) if w not in STOP_WORDS and w.strip("_")]
    return terms[:MAX_TERMS]


def knowledge_search(*, query: str, limit: int = 5, kind: str | None = None) -> list[PassageHit]:
    """The passages best matching `query` (any of its words, best first), with citations;
    only from documents of `kind` (e.g. "policy") when given.

    Ranked by the database's full-text index: PostgreSQL ts_rank over a weighted tsvector
    (headings weigh more than text), SQLite FTS5 bm25. Never raises on odd input: a query
    without searchable words finds nothing.
    """
    terms = search_terms(query)
    limit = min(limit, MAX_LIMIT)
    if not terms or limit < 1:
        return []
    if connection.vendor == "postgresql":
        return _search_postgres(terms, limit, kind)
    return _search_sqlite(terms, limit, kind)


def knowledge_search_json(query: str, limit: int = 5, kind: str | None = None) -> list[dict]:
    """`knowledge_search` as plain JSON, for a mission step: `ctx.step("policy",
    knowledge_search_json, "refund time window")` records which passages were used."""
    return [hit.to_json() for hit in knowledge_search(query=query, limit=limit, kind=kind)]


def knowledge_record(type: str, key: str) -> dict | None:
    """The record's data plus its "type" and "key", or None; usable as a mission step:
    `ctx.step("retrieve_order", knowledge_record, "order", "A-1001")`."""
    key = str(key)
    data = Record.objects.filter(type=type, key=key).values_list("data", flat=True).first()
    if data is None:
        return None
    return {**(data if isinstance(data, dict) else {"value": data}), "type": type, "key": key}


def citation(document_title: str, section: str) -> str:
    """ "Refund policy § Time window": the section path without the document's own title."""
    parts = section.split(SECTION_SEPARATOR) if section else []
    if parts and parts[0].strip().casefold() == document_title.strip().casefold():
        parts = parts[1:]
    return f"{document_title} § {SECTION_SEPARATOR.join(parts)}" if parts else document_title


def _search_postgres(terms: list[str], limit: int, kind: str | None) -> list[PassageHit]:
    query = reduce(operator.or_, (SearchQuery(t, config=SEARCH_CONFIG) for t in terms))
    passages = Passage.objects.filter(search_vector=query)
    if kind:
        passages = passages.filter(document__kind=kind)
    passages = (
        passages.annotate(rank=SearchRank(F("search_vector"), query))
        .select_related("document")
        .order_by("-rank", "id")[:limit]
    )
    return [_hit(passage, passage.document, passage.rank) for passage in passages]


def _search_sqlite(terms: list[str], limit: int, kind: str | None) -> list[PassageHit]:
    match = " OR ".join(f'"{term}"' for term in terms)
    with connection.cursor() as cursor:
        # bm25 is lower-is-better; negated so that rank means the same on both databases.
        cursor.execute(
            "SELECT f.rowid, -bm25(knowledge_passage_fts, 4.0, 1.0) AS rank"
            " FROM knowledge_passage_fts f"
            " JOIN knowledge_passage p ON p.id = f.rowid"
            " JOIN knowledge_document d ON d.id = p.document_id"
            " WHERE knowledge_passage_fts MATCH %s AND (%s IS NULL OR d.kind = %s)"
            " ORDER BY rank DESC, f.rowid LIMIT %s",
            [match, kind, kind, limit],
        )
        ranked = cursor.fetchall()
    passages = Passage.objects.select_related("document").in_bulk([pid for pid, _ in ranked])
    # A passage replaced between the two queries is skipped, not an error.
    return [
        _hit(passages[pid], passages[pid].document, rank) for pid, rank in ranked if pid in passages
    ]


def _hit(passage: Passage, document: Document, rank: float) -> PassageHit:
    return PassageHit(
        passage_id=passage.id,
        document_title=document.title,
        document_slug=document.slug,
        section=passage.section,
        text=passage.text,
        rank=float(rank),
        citation=citation(document.title, passage.section),
    )
