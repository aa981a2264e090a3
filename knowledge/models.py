"""Enterprise knowledge: documents split into searchable passages, and typed records."""

from django.contrib.postgres.search import SearchVectorField
from django.db import models


class Document(models.Model):
    """A policy or procedure; its text lives on as passages, one per Markdown section."""

    class Kind(models.TextChoices):
        POLICY = "policy", "Policy"
        PROCEDURE = "procedure", "Procedure"
        REFERENCE = "reference", "Reference"

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.POLICY)
    source = models.CharField(max_length=500, blank=True, help_text="where the text came from")
    text = models.TextField()
    content_hash = models.CharField(max_length=64, editable=False)
    imported_at = models.DateTimeField()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Passage(models.Model):
    """One section (or a chunk of a long one) of a document, the unit that search returns.

    Written only by `knowledge.services`, which also keeps the full-text index current: the
    `search_vector` column on PostgreSQL (GIN-indexed), the `knowledge_passage_fts` FTS5 table
    on SQLite (where `search_vector` stays empty).
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="passages")
    section = models.CharField(max_length=500, help_text='heading path, e.g. "Refunds > Window"')
    position = models.PositiveIntegerField()
    text = models.TextField()
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["document", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "position"], name="knowledge_passage_unique_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.document.title} § {self.section}"


class Record(models.Model):
    """A typed business record (order, payment, customer…) as JSON, keyed by type and key."""

    type = models.CharField(max_length=50)
    key = models.CharField(max_length=200)
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["type", "key"]
        constraints = [
            models.UniqueConstraint(fields=["type", "key"], name="knowledge_record_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.key}"
