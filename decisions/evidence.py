"""What a decision shows its approvers, read from the `context` its mission attached
(docs/decision-queue.md, "What a mission attaches"). The Decision Queue knows no mission's
keys: a mission declares its evidence in this shape, every key optional:

    {
        "evidence": [{"label": "Order", "value": "A-1004", "source": "knowledge"}, ...],
        "rationale": "Why the mission thinks this should be approved.",
        "passages": [{"text": "Refunds within 30 days ...", "citation": "Refund policy § 2"}],
        "links": [{"label": "Order in the shop", "url": "https://shop.example/A-1004"}],
    }

Any other key whose value is text, a number or a yes/no is listed by its name; every value is
in the page's "All context (JSON)". What does not fit the shape (a missing label, a link that
is not http(s) or a path on this site) is left out rather than failing the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

SHAPED_KEYS = frozenset({"evidence", "rationale", "passages", "links"})
SAFE_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    source: str = ""


@dataclass(frozen=True)
class Passage:
    text: str
    citation: str = ""


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Evidence:
    facts: list[Fact] = field(default_factory=list)
    rationale: str = ""
    passages: list[Passage] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    other: list[Fact] = field(default_factory=list)  # plain values outside the shape

    def __bool__(self) -> bool:
        return bool(self.facts or self.rationale or self.passages or self.links or self.other)


def decision_evidence(context: object) -> Evidence:
    """The evidence of a decision's `context`, in the documented shape."""
    if not isinstance(context, dict):
        return Evidence()
    return Evidence(
        facts=[fact for item in _items(context.get("evidence")) if (fact := _fact(item))],
        rationale=_text(context.get("rationale")),
        passages=[p for item in _items(context.get("passages")) if (p := _passage(item))],
        links=[link for item in _items(context.get("links")) if (link := _link(item))],
        other=[
            Fact(label=key.replace("_", " ").capitalize(), value=_text(value))
            for key, value in context.items()
            if key not in SHAPED_KEYS and _is_plain(value)
        ],
    )


def _items(value: object) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _is_plain(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and value != ""


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if _is_plain(value) else ""


def _fact(item: dict) -> Fact | None:
    label, value = _text(item.get("label")), _text(item.get("value"))
    if not (label and value):
        return None
    return Fact(label=label, value=value, source=_text(item.get("source")))


def _passage(item: dict) -> Passage | None:
    text = _text(item.get("text"))
    return Passage(text=text, citation=_text(item.get("citation"))) if text else None


def _link(item: dict) -> Link | None:
    url = _text(item.get("url"))
    if not url or not _is_safe_url(url):
        return None
    return Link(label=_text(item.get("label")) or url, url=url)


def _is_safe_url(url: str) -> bool:
    """http(s), or a path on this site: a `javascript:` link would run in the approver's page."""
    parts = urlsplit(url)
    if parts.scheme:
        return parts.scheme.lower() in SAFE_SCHEMES and bool(parts.netloc)
    return url.startswith("/") and not url.startswith("//") and "\\" not in url
