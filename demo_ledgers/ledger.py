"""The demo ledgers: each system's quarter-end account balances and every adjusting entry
posted to them, in one SQLite file.

Plain sqlite3 and no Django, so the server is a separate system with its own truth. The
opening balances come from a JSON data file (`balances.json` beside this module unless
DEMO_LEDGERS_DATA names another); adjusting entries are kept in the SQLite file and survive a
restart. Amounts are stored as integer cents so sums are exact; they leave the ledger as
Decimal strings.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

DB_ENV = "DEMO_LEDGERS_DB"
DATA_ENV = "DEMO_LEDGERS_DATA"
BUNDLED_DATA = Path(__file__).resolve().parent / "balances.json"
CURRENCY = "EUR"
BUSY_SECONDS = 30  # how long a call waits for another process's write to finish
CENTS = Decimal("0.01")
MAX_MEMO = 500
MAX_AMOUNT = Decimal("1000000000000.00")  # SQLite integers hold cents well past this
QUARTER = re.compile(r"^\d{4}-Q[1-4]$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS systems (
    system TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS balances (
    system TEXT NOT NULL REFERENCES systems (system),
    quarter TEXT NOT NULL,
    account TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (system, quarter, account)
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    system TEXT NOT NULL,
    quarter TEXT NOT NULL,
    account TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents <> 0),
    currency TEXT NOT NULL,
    memo TEXT NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (system, quarter, account) REFERENCES balances (system, quarter, account)
);
CREATE INDEX IF NOT EXISTS entries_account ON entries (system, quarter, account);
"""


class LedgerRefused(Exception):
    """The ledger will not answer this read or post this entry; the message says why."""


class Balance(NamedTuple):
    """One account's quarter-end balance in a system, as the data file gives it."""

    system: str
    quarter: str
    account: str
    amount: Decimal
    currency: str = CURRENCY


def default_db_path() -> Path:
    """DEMO_LEDGERS_DB, else ledgers.sqlite3 in STUDIOX_VAR_DIR (or ./var)."""
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    return Path(os.environ.get("STUDIOX_VAR_DIR") or "var") / "ledgers.sqlite3"


def signed_money(value: Any, what: str = "amount") -> Decimal:
    """A finite amount, negative allowed, with at most two decimals, or LedgerRefused."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise LedgerRefused(f"{what} {value!r} is not a number") from None
    if not amount.is_finite():
        raise LedgerRefused(f"{what} {value!r} must be a finite amount")
    if abs(amount) > MAX_AMOUNT:
        raise LedgerRefused(f"{what} {value!r} is beyond {MAX_AMOUNT} in either direction")
    if amount != amount.quantize(CENTS):
        raise LedgerRefused(f"{what} {value!r} has more than two decimals")
    return amount.quantize(CENTS)


def data_on_record() -> tuple[dict[str, str], list[Balance]]:
    """The systems (id -> name) and their balances: DEMO_LEDGERS_DATA (a JSON file), else the
    bundled demo data. The shape: {"currency": "EUR", "systems": {"bank": {"name": "Bank",
    "quarters": {"2026-Q3": {"1010 Operating account": "482310.55"}}}}}."""
    path = Path(os.environ.get(DATA_ENV) or BUNDLED_DATA)
    return parse_data(json.loads(path.read_text()))


def parse_data(data: Any) -> tuple[dict[str, str], list[Balance]]:
    """Systems and balances from the data file's JSON (ValueError when malformed)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("systems"), Mapping):
        raise ValueError('expected {"systems": {"<system>": {"name": ..., "quarters": ...}}}')
    currency = str(data.get("currency") or CURRENCY)
    systems: dict[str, str] = {}
    balances: list[Balance] = []
    for system, spec in data["systems"].items():
        quarters = spec.get("quarters") if isinstance(spec, Mapping) else None
        if not isinstance(quarters, Mapping):
            raise ValueError(f"system {system!r} needs quarters")
        systems[str(system)] = str(spec.get("name") or system)
        for quarter, accounts in quarters.items():
            if not QUARTER.match(str(quarter)) or not isinstance(accounts, Mapping):
                raise ValueError(f"system {system!r}: bad quarter {quarter!r} (e.g. 2026-Q3)")
            for account, amount in accounts.items():
                value = signed_money(amount, f"balance of {system} {quarter} {account}")
                balances.append(Balance(str(system), str(quarter), str(account), value, currency))
    return systems, balances


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def _amount(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(CENTS))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Ledgers:
    """The ledgers in one SQLite file (WAL); every posting is one IMMEDIATE transaction."""

    def __init__(self, path: Path, systems: Mapping[str, str], balances: list[Balance]):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            _use_wal(db)
            db.executescript(SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO systems (system, name) VALUES (?, ?) "
                "ON CONFLICT (system) DO UPDATE SET name = excluded.name",
                list(systems.items()),
            )
            # The data file is the systems' own record of the quarter: it sets the balances
            # before adjustments; the entries posted here stay and count on top of them.
            db.executemany(
                "INSERT INTO balances (system, quarter, account, amount_cents, currency) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (system, quarter, account) DO UPDATE SET "
                "amount_cents = excluded.amount_cents, currency = excluded.currency",
                [(b.system, b.quarter, b.account, _cents(b.amount), b.currency) for b in balances],
            )
            db.execute("COMMIT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Autocommit mode: transactions are explicit. A connection per call keeps tools
        # thread-safe (the server runs sync tools in worker threads).
        db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA synchronous = FULL")  # a posted entry survives power loss
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    def read_balances(self, *, system: str, quarter: str) -> dict[str, Any]:
        """`system`'s accounts for `quarter`: the balance on record, the adjustments posted
        since and the balance now, per account, with the total and the entries."""
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot for the balances and the entries
            try:
                name = self._known(db, system, quarter)
                rows = db.execute(
                    "SELECT b.account, b.amount_cents, b.currency, "
                    "COALESCE(SUM(e.amount_cents), 0) AS adjusted_cents FROM balances b "
                    "LEFT JOIN entries e ON (e.system, e.quarter, e.account) = "
                    "(b.system, b.quarter, b.account) "
                    "WHERE b.system = ? AND b.quarter = ? GROUP BY b.account ORDER BY b.account",
                    (system, quarter),
                ).fetchall()
                entries = db.execute(
                    "SELECT * FROM entries WHERE system = ? AND quarter = ? ORDER BY id",
                    (system, quarter),
                ).fetchall()
            finally:
                db.execute("COMMIT")
        accounts = [
            {
                "account": row["account"],
                "recorded": _amount(row["amount_cents"]),
                "adjustments": _amount(row["adjusted_cents"]),
                "balance": _amount(row["amount_cents"] + row["adjusted_cents"]),
            }
            for row in rows
        ]
        total = sum(row["amount_cents"] + row["adjusted_cents"] for row in rows)
        return {
            "system": system,
            "name": name,
            "quarter": quarter,
            "currency": rows[0]["currency"],
            "accounts": accounts,
            "total": _amount(total),
            "entries": [_entry_json(row) for row in entries],
        }

    def post_adjusting_entry(
        self, *, system: str, quarter: str, account: str, amount: str, memo: str, key: str
    ) -> dict[str, Any]:
        """Post `amount` (negative to decrease) to `account` of `system` for `quarter`, once
        per idempotency `key`.

        A repeated key returns the original entry with `duplicate: true` and writes nothing.
        Raises LedgerRefused for a bad or zero amount, an empty memo, an unknown system,
        quarter or account, or a key already used for a different entry.
        """
        value = signed_money(amount)
        if value == 0:
            raise LedgerRefused("amount must not be 0")
        if not key.strip():
            raise LedgerRefused("idempotency_key is required")
        memo = memo.strip()
        if not memo or len(memo) > MAX_MEMO:
            raise LedgerRefused(f"memo must be 1 to {MAX_MEMO} characters")
        with self._connect() as db:
            # IMMEDIATE takes the write lock first: what we check is what we commit.
            db.execute("BEGIN IMMEDIATE")
            try:
                entry = self._post(db, system, quarter, account, value, memo, key)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return entry

    def _post(
        self,
        db: sqlite3.Connection,
        system: str,
        quarter: str,
        account: str,
        value: Decimal,
        memo: str,
        key: str,
    ) -> dict[str, Any]:
        self._known(db, system, quarter)
        balance = db.execute(
            "SELECT currency FROM balances WHERE system = ? AND quarter = ? AND account = ?",
            (system, quarter, account),
        ).fetchone()
        if balance is None:
            raise LedgerRefused(
                f"{system} has no account {account!r} in {quarter}; its accounts: "
                f"{', '.join(self._accounts(db, system, quarter))}"
            )
        # The UNIQUE key decides who is first, not a prior read.
        inserted = db.execute(
            "INSERT INTO entries (idempotency_key, system, quarter, account, amount_cents, "
            "currency, memo, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (key, system, quarter, account, _cents(value), balance["currency"], memo, _now()),
        )
        original = db.execute("SELECT * FROM entries WHERE idempotency_key = ?", (key,)).fetchone()
        if inserted.rowcount == 0:
            posted = (original["system"], original["quarter"], original["account"])
            if posted != (system, quarter, account) or original["amount_cents"] != _cents(value):
                raise LedgerRefused(
                    f"idempotency key {key!r} was already used for an entry of "
                    f"{_amount(original['amount_cents'])} {original['currency']} on "
                    f"{original['system']} {original['quarter']} {original['account']}"
                )
            return {**_entry_json(original), "duplicate": True}
        return {**_entry_json(original), "duplicate": False}

    @staticmethod
    def _known(db: sqlite3.Connection, system: str, quarter: str) -> str:
        """The system's name; LedgerRefused naming what exists when the system or the quarter
        is not on record."""
        row = db.execute("SELECT name FROM systems WHERE system = ?", (system,)).fetchone()
        if row is None:
            known = [r[0] for r in db.execute("SELECT system FROM systems ORDER BY system")]
            raise LedgerRefused(f"unknown system {system!r}; the systems: {', '.join(known)}")
        quarters = [
            r[0]
            for r in db.execute(
                "SELECT DISTINCT quarter FROM balances WHERE system = ? ORDER BY quarter",
                (system,),
            )
        ]
        if quarter not in quarters:
            raise LedgerRefused(
                f"no balances for {system} in {quarter!r}; its quarters: {', '.join(quarters)}"
            )
        return row["name"]

    @staticmethod
    def _accounts(db: sqlite3.Connection, system: str, quarter: str) -> list[str]:
        return [
            r[0]
            for r in db.execute(
                "SELECT account FROM balances WHERE system = ? AND quarter = ? ORDER BY account",
                (system, quarter),
            )
        ]


def _use_wal(db: sqlite3.Connection) -> None:
    """WAL is a property of the file, set once, when the ledgers open. Switching a new file to
    it takes a lock that SQLite's busy timeout does not wait for, so two servers starting
    together on a new file take turns here."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _entry_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "entry_id": f"AJE-{row['id']:06d}",
        "system": row["system"],
        "quarter": row["quarter"],
        "account": row["account"],
        "amount": _amount(row["amount_cents"]),
        "currency": row["currency"],
        "memo": row["memo"],
        "idempotency_key": row["idempotency_key"],
        "created_at": row["created_at"],
    }
