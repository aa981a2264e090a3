"""Admin: documents (added, edited or uploaded through the import services), their passages
(read-only: the services keep the search index in step) and records."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import slugify

from knowledge.models import Document, Passage, Record
from knowledge.services import (
    DOCUMENT_SUFFIXES,
    ImportRefused,
    document_delete,
    document_import,
    file_import,
)
from studiox.safe_input import (
    NUL,
    NUL_MESSAGE,
    TOO_DEEP_MESSAGE,
    json_problem,
    json_text_too_deep,
)

IMPORT_CHANGE_LIST = "admin/knowledge/import_change_list.html"


class DocumentForm(forms.ModelForm):
    slug = forms.SlugField(required=False, help_text="Made from the title when left blank.")

    class Meta:
        model = Document
        fields = ["title", "slug", "kind", "source", "text"]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.instance.pk is None:
            slug = cleaned.get("slug") or slugify(cleaned.get("title", ""))
            if not slug:
                self.add_error("slug", "Give a slug, or a title with letters or digits.")
            elif Document.objects.filter(slug=slug).exists():
                self.add_error("slug", f"A document with the slug {slug!r} already exists.")
            cleaned["slug"] = slug
        return cleaned


class ImportForm(forms.Form):
    file = forms.FileField(help_text="Markdown or text (a document), JSON or CSV (records). UTF-8.")
    record_type = forms.SlugField(
        required=False, help_text="For records; default: the JSON's type or the file name."
    )


class PassageInline(admin.TabularInline):
    model = Passage
    fields = ["position", "section", "text"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    form = DocumentForm
    list_display = ["title", "slug", "kind", "passage_count", "imported_at"]
    list_filter = ["kind"]
    search_fields = ["title", "slug", "text"]
    inlines = [PassageInline]
    change_list_template = IMPORT_CHANGE_LIST

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(passage_count=Count("passages"))

    @admin.display(description="passages", ordering="passage_count")
    def passage_count(self, document: Document) -> int:
        return document.passage_count

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return ["slug", "content_hash", "imported_at"] if obj else []

    def save_model(self, request: HttpRequest, obj: Document, form, change: bool) -> None:
        document = document_import(
            title=form.cleaned_data["title"],
            text=form.cleaned_data["text"],
            slug=obj.slug if change else form.cleaned_data["slug"],
            kind=form.cleaned_data["kind"],
            source=form.cleaned_data["source"],
        )
        obj.pk, obj.imported_at, obj.content_hash = (
            document.pk,
            document.imported_at,
            document.content_hash,
        )

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Passages go with their document; nobody deletes them one by one.
        perms_needed.discard(Passage._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for document in queryset:
            document_delete(document=document)

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="knowledge_document_import"), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not (self._may_import(request, "document") or self._may_import(request, "record")):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            summary = self._import_upload(request, form)
            if summary:
                self.message_user(request, f"Imported {summary}", messages.SUCCESS)
                return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import knowledge",
            "form": form,
            "records_url": reverse("admin:knowledge_record_changelist"),
        }
        return TemplateResponse(request, "admin/knowledge/document/import.html", context)

    def _import_upload(self, request: HttpRequest, form: ImportForm) -> str | None:
        """The import's summary, or None with the reason on the form."""
        upload = form.cleaned_data["file"]
        model = "document" if upload.name.lower().endswith(DOCUMENT_SUFFIXES) else "record"
        if not self._may_import(request, model):
            form.add_error("file", f"You may not import {model}s.")
            return None
        try:
            text = upload.read().decode("utf-8-sig")
            unsafe = _unsafe_upload(upload.name, text)
            if unsafe is not None:
                raise ImportRefused(f"{upload.name}: {unsafe}")
            return file_import(
                filename=upload.name,
                text=text,
                record_type=form.cleaned_data["record_type"] or None,
            )
        except (ImportRefused, UnicodeDecodeError) as exc:
            form.add_error("file", str(exc))
            return None

    def _may_import(self, request: HttpRequest, model: str) -> bool:
        return request.user.has_perms([f"knowledge.add_{model}", f"knowledge.change_{model}"])


def _unsafe_upload(filename: str, text: str) -> str | None:
    """Why the file's text cannot be stored (a NUL, or JSON nested too deep), or None."""
    if NUL in text:
        return NUL_MESSAGE
    if not filename.lower().endswith(".json"):
        return None
    if json_text_too_deep(text):
        return TOO_DEEP_MESSAGE
    try:
        data = json.loads(text)
    except ValueError:
        return None  # file_import names the syntax error
    problem = json_problem(data)
    return f"{problem.path}: {problem.message}" if problem is not None else None


@admin.register(Passage)
class PassageAdmin(admin.ModelAdmin):
    list_display = ["section", "document", "position"]
    list_filter = ["document__kind"]
    list_select_related = ["document"]
    search_fields = ["section", "text", "document__title"]
    fields = ["document", "section", "position", "text"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    list_display = ["key", "type", "updated_at"]
    list_filter = ["type"]
    search_fields = ["=type", "key", "data"]
    change_list_template = IMPORT_CHANGE_LIST
