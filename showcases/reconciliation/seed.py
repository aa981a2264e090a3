"""The reconciliation's demo data: the general ledger's balances of the twelve demo systems
per quarter, as Enterprise Knowledge records (type `general_ledger`, key `<system>:<quarter>`,
in `demo/` beside this module).

The systems' own balances live in the demo ledgers server (`demo_ledgers/balances.json`). They
agree everywhere except in 2026-Q3, where the bank is 1,250.00 EUR short of the general ledger
(above the default 100.00 EUR threshold) and travel expenses are 42.50 EUR over it (below).
"""

from pathlib import Path

from knowledge.seed import seed_folder

DEMO_DIR = Path(__file__).resolve().parent / "demo"


def seed_demo() -> list[str]:
    """Import the general-ledger records; safe to run again."""
    return seed_folder(DEMO_DIR, source="showcases/reconciliation/demo")
