"""StudioX settings: one module, every knob from the environment (see README, "Settings")."""

import json
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from integrations.rates import parse as parse_rate
from studiox.env import env_bool, env_float, env_int, env_list, env_proxy_ssl_header, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("STUDIOX_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("STUDIOX_DEBUG", False)
TESTING = env_bool("STUDIOX_TESTING", False)
# The environment's key; otherwise the one `bin/studiox` keeps in var/ (created private), so
# that `manage.py` in a new terminal runs against the same embedded installation.
SECRET_KEY_FILE = VAR_DIR / "secret-key"
SECRET_KEY = env_str("STUDIOX_SECRET_KEY")
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"STUDIOX_SECRET_KEY is required when STUDIOX_DEBUG is off (or a key in "
            f"{SECRET_KEY_FILE}, which bin/studiox creates)"
        )
    SECRET_KEY = "insecure-debug-only-key"

ALLOWED_HOSTS = env_list("STUDIOX_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("STUDIOX_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    "template_partials",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "studiox",
    "missions",
    "decisions",
    "observations",
    "knowledge",
    "integrations",
    "showcases",
    "schedules",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "studiox.api.middleware.ApiRequestLimitMiddleware",
    "studiox.safe_input.RefuseNulMiddleware",
    "studiox.static_files.AsyncWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "studiox.urls"
WSGI_APPLICATION = "studiox.wsgi.application"
ASGI_APPLICATION = "studiox.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "decisions.context_processors.pending_decisions",
            ],
        },
    },
]

# Database: PostgreSQL in production, a SQLite file under var/ on the embedded default.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'studiox.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Several processes share the file: WAL lets readers run beside the writer, IMMEDIATE
    # takes the write lock at BEGIN so two writers queue instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Worker processes in tests must see the test database, so it is a file, never :memory:.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_studiox.sqlite3")}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The engine's hottest statements ask to be prepared (missions.postgres_fast_paths);
    # Django turns psycopg's prepared statements off unless a threshold is set. Its own
    # queries bind parameters on the client and are never prepared either way.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
    # Under ASGI each request runs its sync code in a thread of its own, so a connection kept
    # per thread meant a new PostgreSQL connection per request: the web server (studiox.asgi
    # sets 8) takes connections from a pool of this size. 0: one kept per thread (workers).
    DB_POOL_SIZE = env_int("STUDIOX_DB_POOL_SIZE", 0)
    if DB_POOL_SIZE:
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DB_POOL_SIZE),
            "max_size": DB_POOL_SIZE,
            "timeout": 10,
        }
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Password guessing (studiox/sign_in.py): wrong passwords per account and per address (higher,
# as colleagues may share one proxy's address), invalid API tokens per address; past a limit
# within the cool-off, the account or address waits out the cool-off.
STUDIOX_LOGIN_FAILURE_LIMIT = env_int("STUDIOX_LOGIN_FAILURE_LIMIT", 10)
STUDIOX_LOGIN_ADDRESS_FAILURE_LIMIT = env_int("STUDIOX_LOGIN_ADDRESS_FAILURE_LIMIT", 50)
STUDIOX_TOKEN_FAILURE_LIMIT = env_int("STUDIOX_TOKEN_FAILURE_LIMIT", 20)
STUDIOX_LOGIN_COOLOFF_MINUTES = env_int("STUDIOX_LOGIN_COOLOFF_MINUTES", 15)
for _name in (
    "STUDIOX_LOGIN_FAILURE_LIMIT",
    "STUDIOX_LOGIN_ADDRESS_FAILURE_LIMIT",
    "STUDIOX_TOKEN_FAILURE_LIMIT",
    "STUDIOX_LOGIN_COOLOFF_MINUTES",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# HTTPS in production. Off on the embedded default, which serves plain http on 127.0.0.1:
# secure-only cookies would never come back there, and nobody could log in.
HTTPS = env_bool("STUDIOX_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# Load balancers probe over plain http and do not follow redirects.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("STUDIOX_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("STUDIOX_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("STUDIOX_HSTS_PRELOAD", HTTPS)
# Only behind a proxy that always sets (never forwards) this header: anyone else could send it.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("STUDIOX_PROXY_SSL_HEADER")

# Content-Security-Policy: no inline script, style or eval anywhere, so injected markup cannot
# run. A page that must inline a script (the API docs) marks it with the request's nonce,
# which then, and only then, joins script-src. 'self' in connect-src covers ws:/wss: too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],  # the API docs' icons are data: images in their CSS
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("STUDIOX_MAX_REQUEST_BYTES", 1024 * 1024)
# Django leaves uploaded files out of the limit above; a file upload (multipart/form-data, such
# as the admin's knowledge import) may have this many bytes in all.
MAX_UPLOAD_BYTES = env_int("STUDIOX_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
# A request body must arrive within this many seconds (0: no limit); the web server times out
# slow headers but not a body trickled a byte at a time.
REQUEST_BODY_TIMEOUT = env_float("STUDIOX_REQUEST_BODY_TIMEOUT", 60.0)

# Broker: Redis in production; the embedded default uses kombu's filesystem transport under
# var/, which needs no service and still reaches worker processes. The database is the truth:
# a lost message costs latency (the scheduler re-enqueues), never a mission.
BROKER_URL = env_str("STUDIOX_BROKER_URL", "filesystem://")
BROKER_DIR = VAR_DIR / "broker"

# Parallel test runners (pytest-xdist) share Redis and var/: each gets its own queue and
# channel prefix, and its processes (workers, servers) inherit the same names.
TEST_RUNNER = env_str("PYTEST_XDIST_WORKER") if TESTING else ""
TEST_RUNNER_SUFFIX = f"-{TEST_RUNNER}" if TEST_RUNNER else ""

# Channel layer: Redis in production; in-memory on the embedded default, where pages also
# catch up from the database, so a push that cannot cross processes costs only latency.
CHANNEL_LAYER_URL = env_str("STUDIOX_CHANNEL_LAYER_URL", "memory://")
if CHANNEL_LAYER_URL.startswith(("redis://", "rediss://")):
    CHANNEL_PREFIX = env_str("STUDIOX_CHANNEL_PREFIX", "studiox") + TEST_RUNNER_SUFFIX
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": CHANNEL_LAYER_URL,
                        # redis-py 8 reads with a 5 s socket timeout by default, the same as
                        # the layer's blocking pop: a consumer's receive then fails at random
                        # after 5 s idle ("Timeout reading from ...") and its WebSocket
                        # closes. Wait longer.
                        "socket_timeout": 15,
                        # Named, so that CLIENT LIST tells the layer's connections apart.
                        "client_name": CHANNEL_PREFIX,
                    }
                ],
                "prefix": CHANNEL_PREFIX,
            },
        }
    }
elif CHANNEL_LAYER_URL == "memory://":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    raise ImproperlyConfigured(
        f"Unexpected value STUDIOX_CHANNEL_LAYER_URL={CHANNEL_LAYER_URL}, "
        "use memory:// or redis://host:port/db"
    )

# Cache: request throttles and sign-in failure counters live here. Per process by default;
# with more than one web process, point it at Redis (a database of its own) so that the
# limits hold across processes.
CACHE_URL = env_str("STUDIOX_CACHE_URL", "locmem://")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "studiox.cache.SharedClientRedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "studiox" + TEST_RUNNER_SUFFIX,
        }
    }
elif CACHE_URL == "locmem://":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured(
        f"Unexpected value STUDIOX_CACHE_URL={CACHE_URL}, use locmem:// or redis://host:port/db"
    )

# Missions.
STUDIOX_MISSION_MODULES = env_list("STUDIOX_MISSION_MODULES")
STUDIOX_LEASE_SECONDS = env_int("STUDIOX_LEASE_SECONDS", 10)
STUDIOX_TICK_SECONDS = env_float("STUDIOX_TICK_SECONDS", 1.0)
STUDIOX_TIME_SLICE_MS = env_int("STUDIOX_TIME_SLICE_MS", 0)
STUDIOX_MAX_STEP_RESULT_BYTES = env_int("STUDIOX_MAX_STEP_RESULT_BYTES", 1024 * 1024)
STUDIOX_MAX_WORKER_LOSSES = env_int("STUDIOX_MAX_WORKER_LOSSES", 3)
STUDIOX_RETENTION_DAYS = env_int("STUDIOX_RETENTION_DAYS", 90)
STUDIOX_PURGE_SECONDS = env_float("STUDIOX_PURGE_SECONDS", 3600.0)
# Schedules (docs/operating.md): a fire time later than the grace counts as missed (catch-up
# policy "skip" drops it); "all" starts at most CATCH_UP_MAX missed fire times.
STUDIOX_SCHEDULE_GRACE_SECONDS = env_float("STUDIOX_SCHEDULE_GRACE_SECONDS", 60.0)
STUDIOX_SCHEDULE_CATCH_UP_MAX = env_int("STUDIOX_SCHEDULE_CATCH_UP_MAX", 100)
STUDIOX_LIVE_POLL_SECONDS = env_float("STUDIOX_LIVE_POLL_SECONDS", 1.0)
STUDIOX_DEMO_PASSWORD = env_str("STUDIOX_DEMO_PASSWORD")

# MCP servers that ctx.call_tool may use besides the admin's McpServer rows, a JSON object:
# {"name": {"transport": "stdio", "command": [...], "env": {...}}}
# or {"name": {"transport": "http", "url": "http://..."}}; optional "timeout_seconds" (30).
try:
    STUDIOX_MCP_SERVERS = json.loads(env_str("STUDIOX_MCP_SERVERS") or "{}")
except ValueError as exc:
    raise ImproperlyConfigured(f"STUDIOX_MCP_SERVERS is not valid JSON: {exc}") from exc
if not isinstance(STUDIOX_MCP_SERVERS, dict):
    raise ImproperlyConfigured("STUDIOX_MCP_SERVERS must be a JSON object: name -> server")

# Each showcase keeps its own settings beside its mission (showcases/<name>/settings.py).
from showcases.refund.settings import (  # noqa: E402, F401
    STUDIOX_FINANCE_THRESHOLD,
    STUDIOX_REFUND_COOLING_OFF_SECONDS,
    STUDIOX_REFUND_WINDOW_DAYS,
    STUDIOX_RESTOCKING_FEE_RATE,
)

# LLM provider (docs/operating.md): offline needs no network; the API key is never logged
# nor recorded.
LLM_PROVIDERS = ("offline", "openai", "anthropic")
STUDIOX_LLM_PROVIDER = env_str("STUDIOX_LLM_PROVIDER", "offline")
if STUDIOX_LLM_PROVIDER not in LLM_PROVIDERS:
    raise ImproperlyConfigured(
        f"Unexpected value STUDIOX_LLM_PROVIDER={STUDIOX_LLM_PROVIDER}, use one of {LLM_PROVIDERS}"
    )
STUDIOX_LLM_MODEL = env_str("STUDIOX_LLM_MODEL")
if STUDIOX_LLM_PROVIDER != "offline" and not STUDIOX_LLM_MODEL:
    raise ImproperlyConfigured(f"STUDIOX_LLM_MODEL is required with {STUDIOX_LLM_PROVIDER}")
STUDIOX_LLM_BASE_URL = env_str("STUDIOX_LLM_BASE_URL")
STUDIOX_LLM_API_KEY = env_str("STUDIOX_LLM_API_KEY")
STUDIOX_LLM_TIMEOUT_SECONDS = env_float("STUDIOX_LLM_TIMEOUT_SECONDS", 60.0)
STUDIOX_LLM_MAX_TOKENS = env_int("STUDIOX_LLM_MAX_TOKENS", 1024)
# Rate limits on the LLM provider, shared by every worker (integrations.ratelimit): calls
# ("60/min", blank: none) and tokens per minute (0: none).
STUDIOX_LLM_RATE_LIMIT = env_str("STUDIOX_LLM_RATE_LIMIT")
STUDIOX_LLM_TOKENS_PER_MINUTE = env_int("STUDIOX_LLM_TOKENS_PER_MINUTE", 0)
# Where rate limits keep their windows: Redis (the broker's, when it is Redis) or "database".
STUDIOX_RATE_LIMIT_URL = env_str(
    "STUDIOX_RATE_LIMIT_URL",
    BROKER_URL if BROKER_URL.startswith(("redis://", "rediss://")) else "database",
)
if not STUDIOX_RATE_LIMIT_URL.startswith(("redis://", "rediss://", "database")):
    raise ImproperlyConfigured(
        f"Unexpected value STUDIOX_RATE_LIMIT_URL={STUDIOX_RATE_LIMIT_URL}, "
        "use redis://host:port/db or database"
    )
if STUDIOX_LLM_RATE_LIMIT:
    try:
        parse_rate(STUDIOX_LLM_RATE_LIMIT)
    except ValueError as exc:
        raise ImproperlyConfigured(f"STUDIOX_LLM_RATE_LIMIT: {exc}") from exc

# Celery: steps are idempotent, so tasks are acknowledged late.
CELERY_BROKER_URL = BROKER_URL
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "polling_interval": 0.05,
    }
    if BROKER_URL.startswith("filesystem://")
    # Redis keeps one list per message priority and serves 0 first: a mission's priority
    # (-10..10) maps onto all ten (missions.engine.enqueue_advance). The filesystem broker
    # has no priorities.
    else {"visibility_timeout": 3600, "priority_steps": list(range(10))}
)
if BROKER_URL.startswith("redis://"):
    # kombu's Redis channel builds a client per acknowledgement; this one keeps it (broker.py).
    CELERY_BROKER_TRANSPORT = "studiox.broker:RedisTransport"
if BROKER_URL.startswith("filesystem://"):
    # kombu's own filesystem transport lets a consumer take a half-written message (broker.py).
    CELERY_BROKER_TRANSPORT = "studiox.broker:Transport"
    (BROKER_DIR / "out").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "control").mkdir(parents=True, exist_ok=True)
# Celery's Django fix-up closes every database connection around every task unless told to
# reuse them: a new PostgreSQL connection per step cost more than the step itself. Workers
# keep connections the way Django does for requests instead (studiox/celery.py).
CELERY_DB_REUSE_MAX = 10_000
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Each worker process may hold a few messages ahead, so that one finishing a step takes the
# next at once instead of waiting for a broker round trip. A message held by a worker that
# dies is found again by the scheduler (missions.services._requeue_lost).
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("STUDIOX_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("STUDIOX_TASK_TIME_LIMIT", 330)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_DEFAULT_QUEUE = env_str("STUDIOX_QUEUE", "studiox") + TEST_RUNNER_SUFFIX

# REST API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "studiox.api.authentication.TokenOrBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["studiox.api.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "studiox.api.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("STUDIOX_THROTTLE_ANON", "60/minute"),
        "user": env_str("STUDIOX_THROTTLE_USER", "6000/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "StudioX API",
    "DESCRIPTION": "Start, follow and decide durable AI Missions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Three models call their choices "status": name each set after its model.
    "ENUM_NAME_OVERRIDES": {
        "MissionStatusEnum": "missions.models.Mission.Status",
        "StepStatusEnum": "missions.models.Step.Status",
        "DecisionStatusEnum": "decisions.models.Decision.Status",
    },
}

# E-mail: one line per message in the log on the embedded default; SMTP when configured.
EMAIL_BACKEND = env_str("STUDIOX_EMAIL_BACKEND", "studiox.logs.OneLineConsoleEmailBackend")
EMAIL_HOST = env_str("STUDIOX_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("STUDIOX_EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("STUDIOX_FROM_EMAIL", "studiox@localhost")
# Notifications are sent by the worker that opened the decision: a dead SMTP server must not
# hold it for long.
EMAIL_TIMEOUT = env_int("STUDIOX_EMAIL_TIMEOUT", 10)
# Where links in e-mails point (the address people open the app at).
STUDIOX_BASE_URL = env_str("STUDIOX_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Role webhooks (decisions.webhooks): a short timeout, since a worker waits on each POST;
# 5xx, 429 and network errors are retried after RETRY_SECONDS, doubling, up to MAX_ATTEMPTS.
STUDIOX_WEBHOOK_TIMEOUT_SECONDS = env_float("STUDIOX_WEBHOOK_TIMEOUT_SECONDS", 5.0)
STUDIOX_WEBHOOK_MAX_ATTEMPTS = env_int("STUDIOX_WEBHOOK_MAX_ATTEMPTS", 5)
STUDIOX_WEBHOOK_RETRY_SECONDS = env_float("STUDIOX_WEBHOOK_RETRY_SECONDS", 10.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"websocket_chatter": {"()": "studiox.logs.DropWebSocketChatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("STUDIOX_LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        # uvicorn logs each WebSocket opened and closed here (studiox.logs says why not).
        "uvicorn.error": {"filters": ["websocket_chatter"]},
        # A line per task received and per task done (the scheduler ticks every second, a
        # busy worker runs hundreds of steps a second) would bury what operators need to see.
        **{
            name: {"level": env_str("STUDIOX_CELERY_TASK_LOG_LEVEL", "WARNING")}
            for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")
        },
    },
}
