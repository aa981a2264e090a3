from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from knowledge.models import Document
from knowledge.services import DOCUMENT_SUFFIXES, RECORD_SUFFIXES, ImportRefused, file_import

SUFFIXES = DOCUMENT_SUFFIXES + RECORD_SUFFIXES


class Command(BaseCommand):
    help = (
        "Import knowledge files and folders: .md/.markdown/.txt become documents, .json and "
        ".csv become records. Safe to run again: documents are replaced, records updated."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument(
            "--kind",
            default="policy",
            choices=Document.Kind.values,
            help="kind of the documents (default: policy)",
        )
        parser.add_argument(
            "--type",
            dest="record_type",
            help="record type (default: from the file, orders.csv -> order)",
        )

    def handle(self, *args, paths: list[Path], record_type=None, kind="policy", **options):
        files = [file for path in paths for file in self._files(path)]
        for file in files:
            try:
                summary = file_import(
                    filename=str(file),
                    text=file.read_text(encoding="utf-8-sig"),
                    record_type=record_type,
                    kind=kind,
                )
            except (ImportRefused, UnicodeDecodeError) as exc:
                raise CommandError(f"{file}: {exc}") from exc
            self.stdout.write(summary)
        self.stdout.write(self.style.SUCCESS(f"Imported {len(files)} files"))

    def _files(self, path: Path) -> list[Path]:
        if path.is_dir():
            # In a folder, files of other kinds (README, images…) are simply not knowledge.
            return sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
        if not path.is_file():
            raise CommandError(f"{path}: no such file or folder")
        if path.suffix.lower() not in SUFFIXES:
            raise CommandError(f"{path}: cannot import {path.suffix or 'a file without a suffix'}")
        return [path]
