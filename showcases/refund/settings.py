"""The customer refund's settings, read from the environment (docs/operating.md).

`studiox/settings.py` takes these names in, so the refund reads them as Django settings
(`settings.STUDIOX_FINANCE_THRESHOLD`) and tests may override them like any other. The numbers
mirror the demo refund policy's text (`demo/refund-policy.md` beside this module).
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

from studiox.env import env_float, env_int, env_str

STUDIOX_REFUND_WINDOW_DAYS = env_int("STUDIOX_REFUND_WINDOW_DAYS", 30)
STUDIOX_RESTOCKING_FEE_RATE = env_float("STUDIOX_RESTOCKING_FEE_RATE", 0.10)
STUDIOX_REFUND_COOLING_OFF_SECONDS = env_float("STUDIOX_REFUND_COOLING_OFF_SECONDS", 3.0)

# Refunds above this amount (EUR) also need finance sign-off.
try:
    STUDIOX_FINANCE_THRESHOLD = Decimal(env_str("STUDIOX_FINANCE_THRESHOLD", "500.00"))
except InvalidOperation as exc:
    raise ImproperlyConfigured("Unexpected STUDIOX_FINANCE_THRESHOLD, use e.g. 500.00") from exc
if not STUDIOX_FINANCE_THRESHOLD.is_finite() or STUDIOX_FINANCE_THRESHOLD < 0:
    raise ImproperlyConfigured("Unexpected STUDIOX_FINANCE_THRESHOLD, use e.g. 500.00")
