"""Demo knowledge from a folder of files, for the showcases' seeds (`showcases/*/seed.py`).

Demo records give dates as `<event>_days_ago` (e.g. `delivered_days_ago: 10`); the seed stores
them as `<event>_at` dates counted back from the day it runs. `manage.py seed` runs at every
start of `bin/studiox`, so demo cases stay true over time (the refund's A-1001 is inside the
30-day window, A-1002 outside it).
"""

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from knowledge.services import file_import, records_import

DAYS_AGO = "_days_ago"


@transaction.atomic
def seed_folder(
    folder: Path, *, source: str, document_kinds: Mapping[str, str] | None = None
) -> list[str]:
    """Import every .json ({"type", "records"}) and .md file of `folder`; safe to run again
    (unchanged documents are left alone). A document's source reads `<source>/<file name>`;
    documents are policies unless `document_kinds` names another kind for their file name."""
    kinds = document_kinds or {}
    summaries = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            content = json.loads(path.read_text())
            rows = [_dated(row) for row in content["records"]]
            count = records_import(type=content["type"], rows=rows)
            summaries.append(f"{path.name}: {count} {content['type']} records")
        elif path.suffix == ".md":
            summaries.append(
                file_import(
                    filename=f"{source}/{path.name}",
                    text=path.read_text(),
                    kind=kinds.get(path.name, "policy"),
                )
            )
    return summaries


def _dated(row: dict) -> dict:
    today = timezone.now().date()
    dated = {}
    for key, value in row.items():
        if key.endswith(DAYS_AGO):
            dated[key.removesuffix(DAYS_AGO) + "_at"] = (today - timedelta(days=value)).isoformat()
        else:
            dated[key] = value
    return dated
