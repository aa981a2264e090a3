"""The demo payments ledger: what each order paid and every refund made, in one SQLite file.

Plain sqlite3 and no Django, so the server is a separate system with its own truth. Amounts
are stored as integer cents so sums are exact; they leave the ledger as Decimal strings.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

LEDGER_ENV = "DEMO_PAYMENTS_LEDGER"
PAID_ENV = "DEMO_PAYMENTS_PAID"
# The refund showcase's demo payments, the same file its knowledge seed imports.
KNOWLEDGE_PAYMENTS = (
    Path(__file__).resolve().parent.parent / "showcases" / "refund" / "demo" / "payments.json"
)
# The same payments, for when that file is absent.
DEFAULT_PAID = {
    "A-1001": "120.00",
    "A-1002": "89.90",
    "A-1003": {"amount": "64.50", "refunded_amount": "64.50"},
    "A-1004": "740.00",
    "A-1005": "50.00",
    "A-1006": "45.00",
    "A-1007": "249.00",
}
CURRENCY = "EUR"
BUSY_SECONDS = 30  # how long a call waits for another process's write to finish
CENTS = Decimal("0.01")

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL REFERENCES payments (order_id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    currency TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_order ON refunds (order_id);
"""


class RefundRefused(Exception):
    """The ledger will not make this refund (or answer this lookup); the message says why."""


def default_ledger_path() -> Path:
    """DEMO_PAYMENTS_LEDGER, else payments-ledger.sqlite3 in STUDIOX_VAR_DIR (or ./var)."""
    if os.environ.get(LEDGER_ENV):
        return Path(os.environ[LEDGER_ENV])
    return Path(os.environ.get("STUDIOX_VAR_DIR") or "var") / "payments-ledger.sqlite3"


def money(value: Any, what: str = "amount") -> Decimal:
    """A positive-or-zero amount with at most two decimals, or RefundRefused."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise RefundRefused(f"{what} {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise RefundRefused(f"{what} {value!r} must be a finite amount of at least 0")
    if amount != amount.quantize(CENTS):
        raise RefundRefused(f"{what} {value!r} has more than two decimals")
    return amount.quantize(CENTS)


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _amount(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(CENTS))


class Payment(NamedTuple):
    """What an order paid, in which currency, and how much was refunded before the ledger."""

    amount: Decimal
    currency: str = CURRENCY
    refunded: Decimal = Decimal("0.00")


def _payments_from(data: Any) -> dict[str, Payment]:
    """Payments from {"A-1": "10.00"}, {"A-1": {"amount": ...}}, a list of {"order_id": ...,
    "amount": ...} objects, or such a list under "records" (the knowledge app's demo data)."""
    if isinstance(data, Mapping) and isinstance(data.get("records"), list):
        data = data["records"]
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, list):
        items = [(row.get("order_id") or row.get("id"), row) for row in data]
    else:
        raise ValueError("expected a JSON object or a list of objects")
    payments: dict[str, Payment] = {}
    for order_id, value in items:
        row = value if isinstance(value, Mapping) else {"amount": value}
        paid = row.get("paid", row.get("amount"))
        if not order_id or paid is None:
            raise ValueError(f"no order id or amount in {order_id!r}: {value!r}")
        payments[str(order_id)] = Payment(
            amount=money(paid, f"paid amount of {order_id}"),
            currency=str(row.get("currency") or CURRENCY),
            refunded=money(row.get("refunded_amount") or "0", f"refunded amount of {order_id}"),
        )
    return payments


def payments_on_record() -> dict[str, Payment]:
    """What each order paid: DEMO_PAYMENTS_PAID (a JSON file, must be valid), else the
    knowledge app's demo payments when readable, else the built-in demo orders."""
    explicit = os.environ.get(PAID_ENV)
    if explicit:
        return _payments_from(json.loads(Path(explicit).read_text()))
    if KNOWLEDGE_PAYMENTS.exists():
        try:
            return _payments_from(json.loads(KNOWLEDGE_PAYMENTS.read_text()))
        except (ValueError, RefundRefused, AttributeError) as exc:
            # Another team owns that file; a shape we do not know must not stop the demo.
            print(f"demo_payments: ignoring {KNOWLEDGE_PAYMENTS}: {exc}", file=sys.stderr)
    return _payments_from(DEFAULT_PAID)


class Ledger:
    """The ledger in one SQLite file (WAL); every refund is one IMMEDIATE transaction."""

    def __init__(self, path: Path, payments: Mapping[str, Payment]):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        now = _now()
        with self._connect() as db:
            _use_wal(db)
            db.executescript(SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO payments (order_id, amount_cents, currency) VALUES (?, ?, ?) "
                "ON CONFLICT (order_id) DO UPDATE SET amount_cents = excluded.amount_cents, "
                "currency = excluded.currency",
                [(order, _cents(p.amount), p.currency) for order, p in payments.items()],
            )
            # Refunds made before this ledger existed count against what is refundable.
            db.executemany(
                "INSERT INTO refunds (idempotency_key, order_id, amount_cents, currency, "
                "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                [
                    (f"seed:{order}", order, _cents(p.refunded), p.currency, now)
                    for order, p in payments.items()
                    if p.refunded > 0
                ],
            )
            db.execute("COMMIT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Autocommit mode: transactions are explicit. A connection per call keeps tools
        # thread-safe (the server runs sync tools in worker threads).
        db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA synchronous = FULL")  # money: a committed refund survives power loss
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    def issue_refund(
        self, *, order_id: str, amount: str, idempotency_key: str, currency: str = CURRENCY
    ) -> dict[str, Any]:
        """Refund `amount` on `order_id` once per `idempotency_key`.

        A repeated key returns the original refund with `duplicate: true` and writes nothing.
        Raises RefundRefused for a bad amount, an unknown order, another currency, a key used
        for a different refund, or a total refunded above what the order paid.
        """
        value = money(amount)
        if value == 0:
            raise RefundRefused("amount must be greater than 0")
        if not idempotency_key.strip():
            raise RefundRefused("idempotency_key is required")
        with self._connect() as db:
            # IMMEDIATE takes the write lock first: the total we check is the total we commit.
            db.execute("BEGIN IMMEDIATE")
            try:
                refund = self._record(db, order_id, value, idempotency_key, currency)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return refund

    def _record(
        self, db: sqlite3.Connection, order_id: str, value: Decimal, key: str, currency: str
    ) -> dict[str, Any]:
        try:
            # The UNIQUE key decides who is first, not a prior read.
            inserted = db.execute(
                "INSERT INTO refunds (idempotency_key, order_id, amount_cents, currency, "
                "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                (key, order_id, _cents(value), currency, _now()),
            )
        except sqlite3.IntegrityError:  # the foreign key: no such order in payments
            raise RefundRefused(f"no payment on record for order {order_id}") from None
        original = self._refund_row(db, key)
        if inserted.rowcount == 0:
            if (original["order_id"], original["amount_cents"], original["currency"]) != (
                order_id,
                _cents(value),
                currency,
            ):
                raise RefundRefused(
                    f"idempotency key {key!r} was already used for a refund of "
                    f"{_amount(original['amount_cents'])} {original['currency']} on order "
                    f"{original['order_id']}"
                )
            return {**_refund_json(original), "duplicate": True}
        paid = db.execute(
            "SELECT amount_cents, currency FROM payments WHERE order_id = ?", (order_id,)
        ).fetchone()
        if paid["currency"] != currency:
            raise RefundRefused(f"order {order_id} was paid in {paid['currency']}, not {currency}")
        already = self._refunded_cents(db, order_id) - original["amount_cents"]
        if already + original["amount_cents"] > paid["amount_cents"]:
            raise RefundRefused(
                f"refund of {_amount(original['amount_cents'])} {currency} refused: order "
                f"{order_id} paid {_amount(paid['amount_cents'])} {currency} and "
                f"{_amount(already)} is already refunded, so at most "
                f"{_amount(paid['amount_cents'] - already)} can be refunded"
            )
        return {**_refund_json(original), "duplicate": False}

    @staticmethod
    def _refund_row(db: sqlite3.Connection, key: str) -> sqlite3.Row:
        return db.execute("SELECT * FROM refunds WHERE idempotency_key = ?", (key,)).fetchone()

    @staticmethod
    def _refunded_cents(db: sqlite3.Connection, order_id: str) -> int:
        row = db.execute(
            "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE order_id = ?", (order_id,)
        ).fetchone()
        return int(row[0])

    def lookup_refunds(self, *, order_id: str) -> dict[str, Any]:
        """An order's payment, its refunds (oldest first), what is left to refund, and when
        the ledger was read (`read_at`: the figures are true as of then)."""
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot for the payment, the rows and the totals
            try:
                read_at = _now()
                paid = db.execute(
                    "SELECT amount_cents, currency FROM payments WHERE order_id = ?", (order_id,)
                ).fetchone()
                rows = db.execute(
                    "SELECT * FROM refunds WHERE order_id = ? ORDER BY id", (order_id,)
                ).fetchall()
            finally:
                db.execute("COMMIT")
        if paid is None:
            raise RefundRefused(f"no payment on record for order {order_id}")
        refunded = sum(row["amount_cents"] for row in rows)
        return {
            "order_id": order_id,
            "currency": paid["currency"],
            "paid": _amount(paid["amount_cents"]),
            "refunded": _amount(refunded),
            "refundable": _amount(paid["amount_cents"] - refunded),
            "refunds": [_refund_json(row) for row in rows],
            "read_at": read_at,
        }


def _use_wal(db: sqlite3.Connection) -> None:
    """WAL is a property of the file, set once, when the ledger opens. Switching a new file to
    it takes a lock that SQLite's busy timeout does not wait for ("database is locked" at
    once), so two servers starting together on a new ledger take turns here."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _refund_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "refund_id": f"RF-{row['id']:06d}",
        "order_id": row["order_id"],
        "amount": _amount(row["amount_cents"]),
        "currency": row["currency"],
        "idempotency_key": row["idempotency_key"],
        "created_at": row["created_at"],
    }
