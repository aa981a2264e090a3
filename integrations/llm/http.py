"""One JSON POST to a provider, with its failures sorted into retryable and not."""

import email.utils
import time

import httpx

from integrations.llm.base import LLMError, LLMRetryableError, ProviderConfig

RETRYABLE_STATUSES = frozenset({408, 429})


def post_json(*, provider: str, url: str, headers: dict, body: dict, config: ProviderConfig):
    """The decoded JSON reply; LLMRetryableError or LLMError otherwise. Messages never carry
    the API key."""
    timeout = httpx.Timeout(config.timeout_seconds, connect=min(config.timeout_seconds, 10.0))
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise LLMRetryableError(
            f"{provider} did not answer within {config.timeout_seconds}s"
        ) from exc
    except httpx.TransportError as exc:
        raise LLMRetryableError(f"{provider} is unreachable: {exc}") from exc
    status = response.status_code
    if status in RETRYABLE_STATUSES or status >= 500:
        raise LLMRetryableError(
            f"{provider} answered {status}: {_detail(response, config)}",
            retry_after=_retry_after(response),
        )
    if status >= 400:
        raise LLMError(f"{provider} refused the request ({status}): {_detail(response, config)}")
    try:
        return response.json()
    except ValueError as exc:
        raise LLMError(f"{provider} reply is not JSON: {_excerpt(response.text, config)}") from exc


def _detail(response: httpx.Response, config: ProviderConfig) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return _excerpt(str(message), config)


def _excerpt(text: str, config: ProviderConfig) -> str:
    if config.api_key:
        text = text.replace(config.api_key, "***")
    return repr(text[:300]) if text.strip() else "(empty body)"


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from Retry-After (seconds or an HTTP date) or retry-after-ms, if given."""
    if milliseconds := response.headers.get("retry-after-ms"):
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
