"""The refund's demo data: the refund policy and procedure, and the customers, orders and
payments of the demo cases (README, "Walk-through"), all in `demo/` beside this module."""

from pathlib import Path

from knowledge.seed import seed_folder

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DOCUMENT_KINDS = {"refund-procedure.md": "procedure"}  # the others are policies


def seed_demo() -> list[str]:
    """Import the refund's demo knowledge; safe to run again."""
    return seed_folder(DEMO_DIR, source="showcases/refund/demo", document_kinds=DOCUMENT_KINDS)
