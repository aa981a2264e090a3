"""Writes: importing documents (split into indexed passages) and records.

Reads live in `knowledge.selectors`; the search and look-up are re-exported here so other apps
import everything knowledge offers from one place.
"""

import csv
import hashlib
import io
import json
from pathlib import PurePath

from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from knowledge.markdown import first_heading, split_sections
from knowledge.models import Document, Passage, Record
from knowledge.selectors import (
    SEARCH_CONFIG,
    PassageHit,
    knowledge_record,
    knowledge_search,
    knowledge_search_json,
)

__all__ = [
    "PassageHit",
    "document_delete",
    "document_import",
    "file_import",
    "knowledge_record",
    "knowledge_search",
    "knowledge_search_json",
    "records_import",
]

DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt")
RECORD_SUFFIXES = (".json", ".csv")


class ImportRefused(ValueError):
    """The input cannot be imported; the message says why, in terms of the input."""


@transaction.atomic
def document_import(
    *, title: str, text: str, slug: str | None = None, kind: str = "policy", source: str = ""
) -> Document:
    """Create or replace the document `slug` (default: from the title) and its passages.

    Re-importing identical text changes nothing; changed text replaces every passage, and its
    index entries, in one transaction.
    """
    slug = slug or slugify(title)
    if not slug:
        raise ImportRefused(f"document {title!r} needs a slug (letters or digits)")
    if kind not in Document.Kind.values:
        raise ImportRefused(f"unknown document kind {kind!r}, use one of {Document.Kind.values}")
    content_hash = hashlib.sha256(text.encode()).hexdigest()
    document = Document.objects.select_for_update().filter(slug=slug).first()
    if document is None:
        document = Document(slug=slug)
    elif document.content_hash == content_hash:
        if (document.title, document.kind, document.source) != (title, kind, source):
            document.title, document.kind, document.source = title, kind, source
            document.save(update_fields=["title", "kind", "source"])
        return document
    else:
        _passages_delete(document)
    document.title, document.kind, document.source, document.text = title, kind, source, text
    document.content_hash = content_hash
    document.imported_at = timezone.now()
    document.save()
    Passage.objects.bulk_create(
        Passage(document=document, section=section.path, position=position, text=section.text)
        for position, section in enumerate(split_sections(text))
    )
    _passages_index(document)
    return document


@transaction.atomic
def document_delete(*, document: Document) -> None:
    """Delete a document with its passages and their index entries."""
    _passages_delete(document)
    document.delete()


@transaction.atomic
def records_import(*, type: str, rows: list[dict], key_field: str = "id") -> int:
    """Insert or update one record per row, keyed by `row[key_field]`; returns the row count."""
    if not type:
        raise ImportRefused("records need a type, e.g. order")
    records: dict[str, Record] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ImportRefused(f"{type} row {number} is not an object")
        key = row.get(key_field)
        if key is None or str(key).strip() == "":
            raise ImportRefused(f"{type} row {number} has no {key_field!r}")
        records[str(key)] = Record(type=type, key=str(key), data=row, updated_at=timezone.now())
    Record.objects.bulk_create(
        records.values(),
        update_conflicts=True,
        unique_fields=["type", "key"],
        update_fields=["data", "updated_at"],
    )
    return len(records)


def file_import(
    *, filename: str, text: str, record_type: str | None = None, kind: str = "policy"
) -> str:
    """Import one file's text by its suffix and return a one-line summary.

    .md/.markdown/.txt become a document of `kind` (slug from the file name, title from its
    first level-one heading or the file name); .json (a list of objects, or {"type": ..., "records":
    [...]}) and .csv become records of `record_type`, the JSON's "type", or the file name in
    the singular (orders.csv -> order).
    """
    path = PurePath(filename)
    suffix = path.suffix.lower()
    if suffix in DOCUMENT_SUFFIXES:
        title = first_heading(text) if suffix != ".txt" else None
        title = title or path.stem.replace("-", " ").replace("_", " ").capitalize()
        document = document_import(
            title=title, text=text, slug=slugify(path.stem), kind=kind, source=filename
        )
        return f"{path.name}: document '{document.title}' ({document.passages.count()} passages)"
    if suffix == ".json":
        rows, json_type = _json_rows(path.name, text)
        record_type = record_type or json_type or _type_from_name(path.stem)
    elif suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        record_type = record_type or _type_from_name(path.stem)
    else:
        raise ImportRefused(f"{path.name}: cannot import {suffix or 'files without a suffix'}")
    count = records_import(type=record_type, rows=rows)
    return f"{path.name}: {count} {record_type} records"


def _json_rows(name: str, text: str) -> tuple[list, str | None]:
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRefused(f"{name}: not valid JSON ({exc})") from exc
    if isinstance(content, list):
        return content, None
    if isinstance(content, dict) and isinstance(content.get("records"), list):
        return content["records"], content.get("type")
    raise ImportRefused(f'{name}: expected a list of objects or {{"type": ..., "records": [...]}}')


def _type_from_name(stem: str) -> str:
    name = slugify(stem).replace("-", "_")
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _passages_delete(document: Document) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM knowledge_passage_fts WHERE rowid IN"
                " (SELECT id FROM knowledge_passage WHERE document_id = %s)",
                [document.pk],
            )
    document.passages.all().delete()


def _passages_index(document: Document) -> None:
    """Bring the full-text index up to date with the document's passages."""
    if connection.vendor == "postgresql":
        vector = SearchVector("section", weight="A", config=SEARCH_CONFIG) + SearchVector(
            "text", weight="B", config=SEARCH_CONFIG
        )
        document.passages.update(search_vector=vector)
    elif connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO knowledge_passage_fts (rowid, section, text)"
                " SELECT id, section, text FROM knowledge_passage WHERE document_id = %s",
                [document.pk],
            )
