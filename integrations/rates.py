"""The rate syntax of rate limits ("20/s", "50/min", "1000/h"), apart from the limiter so that
settings can check a rate without importing Django's database layer."""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True)
class Rate:
    """At most `limit` calls (or tokens) in any `seconds`."""

    limit: int
    seconds: int

    def __str__(self) -> str:
        units = {1: "s", 60: "min", 3600: "h", 86400: "d"}
        return f"{self.limit}/{units.get(self.seconds, f'{self.seconds}s')}"


def parse(text: str) -> Rate:
    """The Rate "20/s", "50/min", "1000/h" or "5000/d" (also "10/second", "30/5min") stands
    for; ValueError saying what is accepted otherwise."""
    match = _RATE.match(str(text).lower()) if text is not None else None
    # "m" is minutes, but "ms" would read as milliseconds: refused rather than misread.
    unit = match and not str(text).strip().lower().endswith("ms") and UNITS.get(match.group(3))
    if not match or not unit or int(match.group(1)) < 1:
        raise ValueError(
            f'{text!r} is not a rate: write calls per period, e.g. "20/s", "50/min", "1000/h"'
        )
    count = int(match.group(2) or 1)
    if count < 1:
        raise ValueError(f"{text!r} is not a rate: the period must be at least 1")
    return Rate(limit=int(match.group(1)), seconds=count * unit)
