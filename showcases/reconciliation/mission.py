"""The quarterly reconciliation: the second showcase mission (README, "Walk-through: a
quarterly reconciliation").

The parent starts one `ledger_reconciliation` child per demo system; each child reads the
system's balances through the ledgers MCP server, compares them with the general-ledger record
in Enterprise Knowledge and returns a verdict. The parent gathers the verdicts; when a
discrepancy exceeds the threshold it waits for the first of finance's sign-off or a 2-day
timer that escalates to the controller; then it posts the adjusting entries through MCP (the
server dedupes by each step's idempotency key, so a replayed posting posts nothing new).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

from knowledge.selectors import knowledge_record
from missions.runtime import Decision, DecisionResult, NonRetryableError, Timer, Verdict, mission

# The demo systems, in the order the parent starts them: id (as the ledgers server knows it)
# and the name people read.
SYSTEMS = {
    "erp": "ERP",
    "bank": "Bank",
    "payroll": "Payroll",
    "card_processor": "Card processor",
    "expenses": "Expenses",
    "inventory": "Inventory",
    "billing": "Billing",
    "treasury": "Treasury",
    "tax": "Tax",
    "fixed_assets": "Fixed assets",
    "procurement": "Procurement",
    "crm": "CRM",
}
LEDGERS = "ledgers"  # the MCP server (the bundled demo_ledgers unless configured otherwise)
GENERAL_LEDGER = "general_ledger"  # knowledge record type, key "<system>:<quarter>"
SIGN_OFF_WINDOW = timedelta(days=2)
QUARTER_PATTERN = r"^\d{4}-Q[1-4]$"
MATCHED, DISCREPANCY = "matched", "discrepancy"


class QuarterRequest(BaseModel):
    quarter: str = Field(pattern=QUARTER_PATTERN, description="the quarter, e.g. 2026-Q3")
    threshold: Decimal = Field(
        default=Decimal("100.00"),
        ge=0,
        max_digits=12,
        decimal_places=2,
        description="EUR: a system further apart than this needs finance sign-off",
    )


class SystemRequest(BaseModel):
    system: str = Field(pattern=r"^[a-z][a-z0-9_]{0,49}$", description="e.g. bank")
    quarter: str = Field(pattern=QUARTER_PATTERN, description="the quarter, e.g. 2026-Q3")


def amount_text(value: Decimal | str, currency: str = "EUR", *, signed: bool = False) -> str:
    """1250 -> "1,250.00 EUR" (with signed, "+1,250.00 EUR")."""
    return f"{Decimal(value):{'+' if signed else ''},.2f} {currency}"


# --- one system: ledger_reconciliation --------------------------------------------------------


def compare_balances(balances: dict, ledger: dict) -> dict:
    """The verdict on one system: each account's balance in the system and in the general
    ledger; `difference` is how far apart they are in all (the sum of the accounts' gaps)."""
    if balances["currency"] != ledger["currency"]:
        raise NonRetryableError(
            f"{balances['name']} keeps {balances['currency']}, the general ledger "
            f"{ledger['currency']}: convert before reconciling"
        )
    in_system = {row["account"]: Decimal(row["balance"]) for row in balances["accounts"]}
    in_ledger = {account: Decimal(str(v)) for account, v in ledger["accounts"].items()}
    zero = Decimal("0.00")
    accounts = []
    for account in sorted(in_system.keys() | in_ledger.keys()):
        system_balance, ledger_balance = in_system.get(account, zero), in_ledger.get(account, zero)
        accounts.append(
            {
                "account": account,
                "system_balance": str(system_balance),
                "ledger_balance": str(ledger_balance),
                "difference": str(system_balance - ledger_balance),
            }
        )
    apart = sum((abs(Decimal(row["difference"])) for row in accounts), zero)
    status = DISCREPANCY if apart else MATCHED
    return {
        "outcome": status,
        "system": balances["system"],
        "status": status,
        "difference": str(apart),
        "details": {
            "name": balances["name"],
            "quarter": balances["quarter"],
            "currency": balances["currency"],
            "accounts": accounts,
        },
    }


def comparison_line(verdict: dict) -> str:
    details = verdict["details"]
    if verdict["status"] == MATCHED:
        return f"Compared {details['name']} with the general ledger: in agreement"
    apart = [row for row in details["accounts"] if Decimal(row["difference"])]
    where = "; ".join(
        f"{row['account']} {amount_text(row['difference'], signed=True)}" for row in apart
    )
    return (
        f"Compared {details['name']} with the general ledger: "
        f"{amount_text(verdict['difference'], details['currency'])} apart ({where})"
    )


@mission(
    "ledger_reconciliation",
    version=1,
    title="Ledger reconciliation",
    input=SystemRequest,
    searchable=("system", "quarter"),
)
def ledger_reconciliation(ctx, request: SystemRequest) -> Verdict:
    """Compare one system's quarter-end balances with the general ledger."""
    name = SYSTEMS.get(request.system, request.system)
    balances = ctx.call_tool(
        "read_balances",
        server=LEDGERS,
        tool="read_balances",
        arguments={"system": request.system, "quarter": request.quarter},
        title=f"Read the {request.quarter} balances of {name}",
    )
    key = f"{request.system}:{request.quarter}"
    ledger = ctx.step(
        "read_general_ledger",
        knowledge_record,
        GENERAL_LEDGER,
        key,
        title=lambda found: (
            f"Read the general ledger of {name} for {request.quarter}"
            if found
            else f"Found no general-ledger record of {name} for {request.quarter}"
        ),
    )
    if ledger is None:
        raise NonRetryableError(f"no general-ledger record {key} in Enterprise Knowledge")
    verdict = ctx.step(
        "compare",
        compare_balances,
        balances,
        ledger,
        title=lambda compared: (
            f"Compared {len(compared['details']['accounts'])} accounts of {name} "
            "with the general ledger"
        ),
    )
    return Verdict(outcome=verdict["outcome"], summary=comparison_line(verdict), details=verdict)


# --- the quarter: quarterly_reconciliation ----------------------------------------------------


@mission(
    "quarterly_reconciliation",
    version=1,
    title="Quarterly reconciliation",
    input=QuarterRequest,
    searchable=("quarter",),
)
def quarterly_reconciliation(ctx, request: QuarterRequest) -> Verdict:
    """Reconcile every demo system with the general ledger for a quarter, get sign-off on
    large discrepancies and post the adjusting entries."""
    ids = [
        ctx.start_mission(
            f"reconcile:{system}",
            type="ledger_reconciliation",
            input={"system": system, "quarter": request.quarter},
            title=f"{label} reconciliation, {request.quarter}",
        )
        for system, label in SYSTEMS.items()
    ]
    children = ctx.wait_for_missions("children", ids)
    unfinished = [child for child in children if child["status"] != "succeeded"]
    if unfinished:
        return _incomplete(ctx, request, children, unfinished)
    verdicts = [child["verdict"] for child in children]
    apart = [v for v in verdicts if v["status"] == DISCREPANCY]
    ctx.observe(_summary_line(request, apart, len(verdicts)), discrepancies=len(apart))
    if not apart:
        return _verdict(request, verdicts, outcome="matched")
    above = [v for v in apart if Decimal(v["difference"]) > request.threshold]
    sign_off = None
    if above:
        sign_off = _sign_off(ctx, request, verdicts, children, above)
        if sign_off["outcome"] != "approved":
            return _verdict(request, verdicts, outcome=sign_off["outcome"], sign_off=sign_off)
    entries = _post_adjusting_entries(ctx, request, apart)
    return _verdict(request, verdicts, outcome="adjusted", sign_off=sign_off, entries=entries)


def _sign_off(
    ctx, request: QuarterRequest, verdicts: list[dict], children: list[dict], above: list[dict]
) -> dict:
    """Finance signs off, or after SIGN_OFF_WINDOW without an answer, the controller."""
    names = ", ".join(v["details"]["name"] for v in above)
    threshold = amount_text(request.threshold)
    ctx.observe(f"{names} above the {threshold} threshold: finance sign-off needed")
    title = f"Sign off the {request.quarter} adjusting entries ({names} above {threshold})"
    summary = _rationale(request, verdicts)
    context = sign_off_context(request, verdicts, children)
    index, value = ctx.wait_any(
        "sign_off",
        Decision(role="finance", title=title, summary=summary, context=context),
        Timer(SIGN_OFF_WINDOW),
    )
    role, decision = "finance", value
    if index != 0:
        ctx.observe(
            f"No finance sign-off within {SIGN_OFF_WINDOW.days} days: escalated to the controller"
        )
        escalation = {
            "label": "Escalated",
            "value": f"finance did not sign off within {SIGN_OFF_WINDOW.days} days",
        }
        role = "controller"
        decision = ctx.wait_for_decision(
            "controller_sign_off",
            role="controller",
            title=f"Escalated: {title}",
            summary=summary,
            context={**context, "evidence": [escalation, *context["evidence"]]},
        )
    return _approval(role, decision)


def _approval(role: str, decision: DecisionResult) -> dict:
    return {
        "role": role,
        "outcome": decision.outcome,
        "by": decision.decided_by,
        "comment": decision.comment,
    }


def _post_adjusting_entries(ctx, request: QuarterRequest, apart: list[dict]) -> list[dict]:
    """One adjusting entry per account apart, bringing the system to the general ledger."""
    entries = []
    for verdict in apart:
        details = verdict["details"]
        for row in details["accounts"]:
            amount = -Decimal(row["difference"])
            if not amount:
                continue
            entry = ctx.call_tool(
                f"post:{verdict['system']}:{row['account']}",
                server=LEDGERS,
                tool="post_adjusting_entry",
                arguments={
                    "system": verdict["system"],
                    "quarter": request.quarter,
                    "account": row["account"],
                    "amount": str(amount),
                    "memo": f"{request.quarter} reconciliation: brought in line with the "
                    "general ledger",
                },
                title=lambda posted, details=details, row=row, amount=amount: (
                    f"Posted {posted['entry_id']} on {details['name']} {row['account']}: "
                    f"{amount_text(amount, details['currency'], signed=True)}"
                ),
            )
            entries.append(entry)
    return entries


def _incomplete(
    ctx, request: QuarterRequest, children: list[dict], unfinished: list[dict]
) -> Verdict:
    failed = [
        {"system": system, "status": child["status"], "error": child["error"]}
        for system, child in zip(SYSTEMS, children, strict=True)
        if child in unfinished
    ]
    line = (
        f"{len(failed)} of {len(children)} systems could not be reconciled for "
        f"{request.quarter}: "
        + ", ".join(SYSTEMS[f["system"]] for f in failed)
        + "; nothing posted"
    )
    ctx.observe(line)
    return Verdict(
        outcome="incomplete",
        summary=line,
        details={"quarter": request.quarter, "failed": failed},
    )


def _summary_line(request: QuarterRequest, apart: list[dict], count: int) -> str:
    if not apart:
        return f"{count} systems reconciled for {request.quarter}: all in agreement"
    listed = ", ".join(
        f"{v['details']['name']} {amount_text(v['difference'], v['details']['currency'])}"
        for v in apart
    )
    return (
        f"{count} systems reconciled for {request.quarter}: "
        f"{len(apart)} discrepanc{'y' if len(apart) == 1 else 'ies'} ({listed})"
    )


def _rationale(request: QuarterRequest, verdicts: list[dict]) -> str:
    apart = [v for v in verdicts if v["status"] == DISCREPANCY]
    above = [v for v in apart if Decimal(v["difference"]) > request.threshold]
    return (
        f"{len(verdicts) - len(apart)} of {len(verdicts)} systems agree with the general ledger "
        f"for {request.quarter}; {len(apart)} do not, {len(above)} of them by more than "
        f"{amount_text(request.threshold)}. Signing off posts one adjusting entry per account "
        "apart, bringing each system in line with the general ledger."
    )


def sign_off_context(request: QuarterRequest, verdicts: list[dict], children: list[dict]) -> dict:
    """What finance (or the controller) sees, in the Decision Queue's evidence shape
    (docs/decision-queue.md): the quarter, the threshold, each system apart with its accounts,
    the entries to post, and links to the children's pages."""
    apart = [v for v in verdicts if v["status"] == DISCREPANCY]
    facts = [
        {"label": "Quarter", "value": request.quarter, "source": "request"},
        {"label": "Threshold", "value": amount_text(request.threshold), "source": "request"},
        {
            "label": "Systems reconciled",
            "value": f"{len(verdicts)}: {len(verdicts) - len(apart)} in agreement, "
            f"{len(apart)} apart",
            "source": "ledger_reconciliation",
        },
    ]
    for verdict in apart:
        details = verdict["details"]
        accounts = "; ".join(
            f"{row['account']}: {amount_text(row['system_balance'])} in {details['name']}, "
            f"{amount_text(row['ledger_balance'])} in the general ledger"
            for row in details["accounts"]
            if Decimal(row["difference"])
        )
        above = Decimal(verdict["difference"]) > request.threshold
        facts.append(
            {
                "label": f"{details['name']} ({'above' if above else 'below'} the threshold)",
                "value": f"{amount_text(verdict['difference'], details['currency'])} apart. "
                f"{accounts}",
                "source": "ledgers MCP server and general ledger",
            }
        )
    entries = "; ".join(
        f"{v['details']['name']} {row['account']} "
        f"{amount_text(-Decimal(row['difference']), signed=True)}"
        for v in apart
        for row in v["details"]["accounts"]
        if Decimal(row["difference"])
    )
    facts.append({"label": "Adjusting entries to post", "value": entries, "source": "mission"})
    by_system = {child["verdict"]["system"]: child["id"] for child in children}
    links = [
        {
            "label": f"{v['details']['name']} reconciliation",
            "url": f"/missions/{by_system[v['system']]}/",
        }
        for v in apart
    ]
    return {
        "evidence": facts,
        "rationale": _rationale(request, verdicts),
        "links": links,
    }


def _verdict(
    request: QuarterRequest,
    verdicts: list[dict],
    *,
    outcome: str,
    sign_off: dict | None = None,
    entries: list[dict] | None = None,
) -> Verdict:
    posted: dict[str, list[str]] = {}
    for entry in entries or []:
        posted.setdefault(entry["system"], []).append(entry["entry_id"])
    summary = _verdict_summary(request, verdicts, outcome=outcome, sign_off=sign_off)
    return Verdict(
        outcome=outcome,
        summary=summary,
        details={
            "quarter": request.quarter,
            "threshold": str(request.threshold),
            "discrepancies": sum(v["status"] == DISCREPANCY for v in verdicts),
            "sign_off": sign_off,
            "systems": [
                {
                    "system": v["system"],
                    "name": v["details"]["name"],
                    "status": v["status"],
                    "difference": v["difference"],
                    "entries": posted.get(v["system"], []),
                }
                for v in verdicts
            ],
            "entries": entries or [],
        },
    )


def _verdict_summary(
    request: QuarterRequest, verdicts: list[dict], *, outcome: str, sign_off: dict | None
) -> str:
    """The quarter's answer in one line, e.g. "2026-Q3 reconciled: 2 of 12 systems adjusted
    (4 entries); signed off by finance"."""
    apart = [v for v in verdicts if v["status"] == DISCREPANCY]
    by = f"{sign_off['by'] or sign_off['role']} ({sign_off['role']})" if sign_off else ""
    if outcome == "matched":
        return f"{request.quarter} reconciled: all {len(verdicts)} systems agree"
    if outcome == "adjusted":
        names = ", ".join(v["details"]["name"] for v in apart)
        signed = f"; signed off by {by}" if sign_off else "; all below the threshold"
        return (
            f"{request.quarter} reconciled: {len(apart)} of {len(verdicts)} systems adjusted "
            f"to the general ledger ({names}){signed}"
        )
    if outcome == "expired":
        return f"{request.quarter} not adjusted: the sign-off expired"
    return f"{request.quarter} not adjusted: sign-off {outcome} by {by}"
