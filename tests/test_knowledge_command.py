"""`manage.py import_knowledge PATH...` on files and folders."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from knowledge.models import Document, Passage, Record
from knowledge.services import knowledge_record, knowledge_search

HANDBOOK = "# Shipping handbook\n\n## Carriers\n\nWe ship with DHL and UPS.\n"
ORDERS_CSV = "id,total,status\nA-1,10.00,delivered\nA-2,20.00,refunded\n"


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_knowledge", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "shipping.md").write_text(HANDBOOK)
    (tmp_path / "policies" / "care-notes.txt").write_text("Wash covers at 30 degrees.")
    (tmp_path / "orders.csv").write_text(ORDERS_CSV)
    (tmp_path / "customers.json").write_text(json.dumps([{"id": "C-1", "name": "Ada"}]))
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n")
    return tmp_path


def test_it_imports_markdown_and_csv_files(db, folder):
    output = run(str(folder / "policies" / "shipping.md"), str(folder / "orders.csv"))
    document = Document.objects.get()
    assert (document.slug, document.title, document.kind) == (
        "shipping",
        "Shipping handbook",
        "policy",
    )
    assert knowledge_search(query="carriers")[0].citation == "Shipping handbook § Carriers"
    assert knowledge_record("order", "A-2")["status"] == "refunded"
    assert "orders.csv: 2 order records" in output


def test_it_imports_a_folder_and_skips_other_files(db, folder):
    output = run(str(folder))
    assert set(Document.objects.values_list("slug", "title")) == {
        ("shipping", "Shipping handbook"),
        ("care-notes", "Care notes"),
    }
    assert set(Record.objects.values_list("type", "key")) == {
        ("order", "A-1"),
        ("order", "A-2"),
        ("customer", "C-1"),
    }
    assert "Imported 4 files" in output
    assert "logo" not in output


def test_running_it_twice_gives_the_same_rows(db, folder):
    run(str(folder))
    counts = (Document.objects.count(), Passage.objects.count(), Record.objects.count())
    passage_ids = set(Passage.objects.values_list("id", flat=True))
    run(str(folder))
    assert (Document.objects.count(), Passage.objects.count(), Record.objects.count()) == counts
    assert set(Passage.objects.values_list("id", flat=True)) == passage_ids


def test_the_type_option_and_the_json_type_name_the_records(db, tmp_path):
    (tmp_path / "export.json").write_text(json.dumps([{"id": "P-1", "amount": "5.00"}]))
    (tmp_path / "dump.json").write_text(
        json.dumps({"type": "customer", "records": [{"id": "C-9", "name": "Bo"}]})
    )
    run(str(tmp_path / "export.json"), "--type", "payment")
    run(str(tmp_path / "dump.json"))
    assert knowledge_record("payment", "P-1")["amount"] == "5.00"
    assert knowledge_record("customer", "C-9")["name"] == "Bo"


def test_the_kind_option_sets_the_documents_kind(db, folder):
    run(str(folder / "policies" / "shipping.md"), "--kind", "procedure")
    assert Document.objects.get().kind == "procedure"


def test_it_refuses_a_missing_path(db, tmp_path):
    with pytest.raises(CommandError, match="no such file or folder"):
        run(str(tmp_path / "nowhere.md"))


def test_it_refuses_a_file_it_cannot_import(db, folder):
    with pytest.raises(CommandError, match=r"cannot import \.png"):
        run(str(folder / "logo.png"))


def test_it_names_the_file_with_bad_json(db, tmp_path):
    (tmp_path / "orders.json").write_text("[{]")
    with pytest.raises(CommandError, match=r"orders\.json.*not valid JSON"):
        run(str(tmp_path / "orders.json"))
    assert not Record.objects.exists()


def test_it_names_the_file_with_rows_without_a_key(db, tmp_path):
    (tmp_path / "orders.csv").write_text("number,total\n1,10.00\n")
    with pytest.raises(CommandError, match=r"orders.csv.*has no 'id'"):
        run(str(tmp_path / "orders.csv"))
