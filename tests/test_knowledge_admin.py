"""The knowledge admin: search, documents through the import service, file upload."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from knowledge.models import Document, Passage, Record
from knowledge.services import knowledge_search
from showcases.refund.seed import seed_demo
from tests.conftest import make_user

IMPORT_URL = "admin:knowledge_document_import"


@pytest.fixture
def demo(db) -> None:
    seed_demo()


@pytest.mark.parametrize(
    ("model", "query", "expected"),
    [
        ("document", "procedure", "Refund procedure"),
        ("passage", "restocking", "Refund policy &gt; Restocking fees"),
        ("record", "A-1004", "A-1004"),
        ("record", "bruno.ferreira", "C-502"),
    ],
)
def test_each_model_can_be_searched(admin_client, demo, model, query, expected):
    response = admin_client.get(reverse(f"admin:knowledge_{model}_changelist"), {"q": query})
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert response.context["cl"].result_count >= 1


def test_a_document_added_in_the_admin_is_split_and_indexed(admin_client, db):
    response = admin_client.post(
        reverse("admin:knowledge_document_add"),
        {
            "title": "Loyalty programme",
            "slug": "",
            "kind": "policy",
            "source": "",
            "text": "# Loyalty programme\n\n## Points\n\nOne point per euro spent.",
            "passages-TOTAL_FORMS": "0",
            "passages-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    document = Document.objects.get(slug="loyalty-programme")
    assert list(document.passages.values_list("section", flat=True)) == [
        "Loyalty programme > Points"
    ]
    assert knowledge_search(query="points")[0].citation == "Loyalty programme § Points"


def test_a_document_edited_in_the_admin_gets_new_passages(admin_client, demo):
    document = Document.objects.get(slug="refund-policy")
    response = admin_client.post(
        reverse("admin:knowledge_document_change", args=[document.pk]),
        {
            "title": document.title,
            "kind": document.kind,
            "source": document.source,
            "text": document.text.replace("within 30 days", "within 45 days"),
            "passages-TOTAL_FORMS": str(document.passages.count()),
            "passages-INITIAL_FORMS": str(document.passages.count()),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert "45 days" in knowledge_search(query="window", kind="policy", limit=1)[0].text


def test_a_document_deleted_in_the_admin_leaves_the_search(admin_client, demo):
    document = Document.objects.get(slug="refund-procedure")
    response = admin_client.post(
        reverse("admin:knowledge_document_delete", args=[document.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Passage.objects.filter(document_id=document.pk).exists()
    assert {hit.document_slug for hit in knowledge_search(query="refund", limit=50)} == {
        "refund-policy"
    }


def test_files_can_be_uploaded_and_imported(admin_client, db):
    url = reverse(IMPORT_URL)
    assert admin_client.get(url).status_code == 200
    markdown = SimpleUploadedFile("warranty.md", b"# Warranty\n\n## Term\n\nTwo years.")
    response = admin_client.post(url, {"file": markdown, "record_type": ""}, follow=True)
    assert "Imported warranty.md" in response.content.decode()
    csv = SimpleUploadedFile("export.csv", b"id,amount\nP-1,5.00\n")
    admin_client.post(url, {"file": csv, "record_type": "payment"})
    assert Document.objects.get(slug="warranty").passages.count() == 1
    assert Record.objects.get(type="payment", key="P-1").data == {"id": "P-1", "amount": "5.00"}


def test_a_bad_upload_is_shown_on_the_form(admin_client, db):
    response = admin_client.post(
        reverse(IMPORT_URL), {"file": SimpleUploadedFile("orders.json", b"[{]")}
    )
    assert response.status_code == 200
    assert "not valid JSON" in response.content.decode()
    assert not Record.objects.exists()


def test_only_staff_allowed_to_add_knowledge_may_import(client, db):
    staff = make_user("clerk", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(IMPORT_URL)).status_code == 403
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_record", "change_record"])
    )
    upload = SimpleUploadedFile("policy.md", b"# Policy\n\nText.")
    response = client.post(reverse(IMPORT_URL), {"file": upload})
    assert "You may not import documents" in response.content.decode()
    assert not Document.objects.exists()


def test_passages_cannot_be_edited_by_hand(admin_client, demo):
    passage = Passage.objects.first()
    response = admin_client.get(reverse("admin:knowledge_passage_change", args=[passage.pk]))
    assert response.status_code == 200
    assert 'name="text"' not in response.content.decode()
