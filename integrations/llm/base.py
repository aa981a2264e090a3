"""What every LLM provider shares: the result, the errors, the settings they read."""

from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from integrations import ratelimit


class LLMRetryableError(Exception):
    """A passing trouble (rate limit, 5xx, time-out, connection): try again later, after
    `retry_after` seconds when the provider said so."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class LLMRateLimited(LLMRetryableError, ratelimit.RateLimited):
    """Over STUDIOX_LLM_RATE_LIMIT or STUDIOX_LLM_TOKENS_PER_MINUTE: nothing was sent; try at
    `next_slot` (a caller that cannot wait retries after `retry_after` seconds)."""

    def __init__(self, *, next_slot, limit: str):
        ratelimit.RateLimited.__init__(self, next_slot=next_slot, limit=limit)


class LLMError(Exception):
    """A reply or request that trying again will not fix: malformed reply, a schema the
    reply keeps violating, a refused request (4xx other than 429)."""


@dataclass
class LLMResult:
    """One completed call: what the mission engine records in the step."""

    model: str
    content: str
    parsed: dict | None
    input_tokens: int
    output_tokens: int
    latency_ms: float
    provider: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Reply:
    """A provider's answer before the schema check; `parsed` when the API returned an
    object itself (Anthropic tool input)."""

    model: str
    content: str
    input_tokens: int
    output_tokens: int
    parsed: Any = None


@dataclass(frozen=True)
class ProviderConfig:
    model: str
    base_url: str
    api_key: str = field(repr=False)
    timeout_seconds: float
    max_tokens: int

    @classmethod
    def from_settings(cls) -> "ProviderConfig":
        return cls(
            model=settings.STUDIOX_LLM_MODEL,
            base_url=settings.STUDIOX_LLM_BASE_URL.rstrip("/"),
            api_key=settings.STUDIOX_LLM_API_KEY,
            timeout_seconds=settings.STUDIOX_LLM_TIMEOUT_SECONDS,
            max_tokens=settings.STUDIOX_LLM_MAX_TOKENS,
        )
