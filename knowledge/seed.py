"""Demo knowledge for the embedded default: the refund policy and procedure, and the orders,
payments and customers the demo refund cases need.

Demo records give dates as `<event>_days_ago` (e.g. `delivered_days_ago: 10`); the seed stores
them as `<event>_at` dates counted back from the day it runs. `manage.py seed` runs at every
start of `bin/studiox`, so the demo cases stay true over time: A-1001 is inside the 30-day
window, A-1002 outside it.
"""

import json
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from knowledge.services import file_import, records_import

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DAYS_AGO = "_days_ago"
DOCUMENT_KINDS = {"refund-procedure.md": "procedure"}  # the others are policies


@transaction.atomic
def seed_demo() -> list[str]:
    """Import every demo file; safe to run again (unchanged documents are left alone)."""
    summaries = []
    for path in sorted(DEMO_DIR.iterdir()):
        if path.suffix == ".json":
            content = json.loads(path.read_text())
            rows = [_dated(row) for row in content["records"]]
            count = records_import(type=content["type"], rows=rows)
            summaries.append(f"{path.name}: {count} {content['type']} records")
        elif path.suffix == ".md":
            summaries.append(
                file_import(
                    filename=f"knowledge/demo/{path.name}",
                    text=path.read_text(),
                    kind=DOCUMENT_KINDS.get(path.name, "policy"),
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
