"""Django settings for meshviz, read from the environment (django-environ).

Every setting that differs between a laptop, CI and a deployment comes from an environment variable;
README.md lists them. Defaults are for local development.
"""

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
FRONTEND_DIR = BASE_DIR / "frontend"

env = environ.Env()

# --- core ---
DEBUG: bool = env.bool("DEBUG", default=True)

# Used only when DEBUG is on and SECRET_KEY is unset; refused otherwise.
INSECURE_DEV_SECRET_KEY = "django-insecure-meshviz-dev-only-set-SECRET_KEY-in-production"
SECRET_KEY: str = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = INSECURE_DEV_SECRET_KEY

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Origins allowed to POST with a CSRF token when they differ from the Host (e.g. https://meshviz.example.com behind
# a proxy that rewrites the host).
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS (docs/deploy.md) ---
# MESHVIZ_HTTPS=true: meshviz is served over HTTPS (usually behind a proxy that sets X-Forwarded-Proto): redirect
# plain HTTP, send HSTS, mark the session and CSRF cookies Secure, and trust the proxy's X-Forwarded-Proto header.
MESHVIZ_HTTPS: bool = env.bool("MESHVIZ_HTTPS", default=False)
if MESHVIZ_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS: int = env.int("MESHVIZ_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("MESHVIZ_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD: bool = env.bool("MESHVIZ_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # /healthz answers plain HTTP probes from inside the cluster or the host
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "meshviz.web",
    "meshviz.accounts",
    "meshviz.analyses",
    "meshviz.clusters",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "meshviz.web.security.ContentSecurityPolicyMiddleware",
    # `Content-Encoding: gzip` request bodies, decompressed (capped) before anything reads them
    "meshviz.web.uploads.GzipRequestMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "meshviz.web.ratelimit.PageRateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "meshviz.urls"
WSGI_APPLICATION = "meshviz.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [FRONTEND_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---
# DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test; SQLite in the repo root by default.
DATABASES: dict[str, dict[str, Any]] = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default under concurrent uploads: WAL lets readers and one writer work at once, writers wait for
    # the lock (busy timeout) instead of failing with "database is locked", and transactions take the write lock
    # when they begin (IMMEDIATE), so two of them never deadlock upgrading a read lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# dates read "4 Dec 2026, 13:22" (meshviz/formats/en/formats.py)
FORMAT_MODULE_PATH = ["meshviz.formats"]

# --- static files (served by WhiteNoise, also under gunicorn) ---
STATIC_URL = "static/"
STATICFILES_DIRS = [FRONTEND_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files need `collectstatic` first (the Dockerfile runs it); not in development.
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        ),
    },
}

# --- cache: rendered diagrams (keyed by a hash of their content) and the API's throttle buckets ---
# CACHE_URL (e.g. redis://127.0.0.1:6379/1) shares both between processes; the default is per process.
CACHES: dict[str, dict[str, Any]] = {
    "default": env.cache("CACHE_URL", default="locmemcache://meshviz"),
}

# --- uploads: evidence files (iptables-save, ip rule/route, Envoy config dumps) ---
# Largest evidence file (after gunzipping a .gz one) or pasted input; node-sized evidence (a 10k-service ruleset,
# a big mesh's 42 MB config dump) fits.
MESHVIZ_MAX_UPLOAD_BYTES: int = env.int("MESHVIZ_MAX_UPLOAD_BYTES", default=100 * 1024 * 1024)
# Largest request body (several files, a JSON body with the evidence in strings), after `Content-Encoding: gzip`
# is undone (meshviz.web.uploads: decompressed with this cap, so a gzip bomb is a 413).
MESHVIZ_MAX_REQUEST_BYTES: int = env.int("MESHVIZ_MAX_REQUEST_BYTES", default=256 * 1024 * 1024)
# Pasted evidence arrives as form fields, which Django caps separately from file uploads.
DATA_UPLOAD_MAX_MEMORY_SIZE = MESHVIZ_MAX_UPLOAD_BYTES
# Uploaded files larger than this are streamed to a temporary file on disk, not kept in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2621440

# --- API ---
# Bots authenticate with API keys (`Authorization: Api-Key mvz_...`), the browser with its session.
# Throttled per API key (per user for sessions, per address when anonymous) at MESHVIZ_API_RATE.
MESHVIZ_API_RATE: str = env.str("MESHVIZ_API_RATE", default="120/min")
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "meshviz.accounts.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["meshviz.accounts.auth.PerKeyRateThrottle"],
    # The browsable API (HTML forms over the API) only in development.
    "DEFAULT_RENDERER_CLASSES": (
        ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"]
        if DEBUG
        else ["rest_framework.renderers.JSONRenderer"]
    ),
    "DEFAULT_PARSER_CLASSES": [
        "meshviz.web.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}

# --- rate limits for pages (meshviz.web.ratelimit); the API has MESHVIZ_API_RATE ---
# Login attempts per client address and per user name.
MESHVIZ_LOGIN_RATE: str = env.str("MESHVIZ_LOGIN_RATE", default="10/min")
# What-if and packet-composer runs (they simulate in the web request): anonymous visitors per address, users each.
MESHVIZ_WHATIF_ANON_RATE: str = env.str("MESHVIZ_WHATIF_ANON_RATE", default="10/min")
MESHVIZ_WHATIF_RATE: str = env.str("MESHVIZ_WHATIF_RATE", default="60/min")
# Every other page (not /api/, static files or /healthz): anonymous visitors per address, users each.
MESHVIZ_PAGE_ANON_RATE: str = env.str("MESHVIZ_PAGE_ANON_RATE", default="300/min")
MESHVIZ_PAGE_RATE: str = env.str("MESHVIZ_PAGE_RATE", default="1200/min")

# --- accounts ---
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
# `make run` (manage.py demo_user) creates this user with a fresh random password and prints it.
MESHVIZ_DEMO_USER: str = env.str("MESHVIZ_DEMO_USER", default="demo")
SPECTACULAR_SETTINGS = {
    "TITLE": "meshviz API",
    "DESCRIPTION": "Trace a connection through a sidecar pod's iptables, policy routing and Envoy config.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # a curl example for every endpoint, in its description and as x-codeSamples (meshviz/web/schema_examples.py)
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "meshviz.web.schema_examples.add_curl_examples",
    ],
}

# --- Celery (meshviz/celery.py reads CELERY_* settings) ---
# Empty broker: tasks run in-process, synchronously, and no broker is needed
# (the in-memory transport only keeps Celery from looking for one on localhost).
_celery_broker_url: str = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not _celery_broker_url
CELERY_BROKER_URL = _celery_broker_url or "memory://localhost/"
CELERY_RESULT_BACKEND: str | None = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_EAGER_PROPAGATES = True
# Tasks acknowledge after they finish (meshviz.analyses.tasks: acks_late). A task whose worker process dies
# is requeued at once by the surviving main process (reject_on_worker_lost); one whose whole worker dies
# (kill -9, a lost node) stays unacknowledged in Redis and is redelivered after this many seconds.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
# With late acknowledgement, a worker reserves one task at a time, so a dying worker strands at most one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Publishing gives up quickly when the broker is down (the analysis stays queued; beat re-dispatches it).
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_TRANSPORT_OPTIONS.update({"socket_connect_timeout": 3, "socket_timeout": 10})
# Bounded work: a task past the soft limit is stopped with a reason (SoftTimeLimitExceeded); past the hard limit its
# process is killed (the reaper then requeues it, at most MESHVIZ_TASK_MAX_ATTEMPTS runs).
CELERY_TASK_SOFT_TIME_LIMIT: int = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT: int = env.int("CELERY_TASK_TIME_LIMIT", default=150)
# A worker process is replaced after this many tasks, or when it holds more than MESHVIZ_WORKER_MEMORY_MB after one.
CELERY_WORKER_MAX_TASKS_PER_CHILD: int = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=50)
# Address space of each worker process (RLIMIT_AS, set in meshviz/celery.py): a task needing more gets MemoryError
# and fails with the reason instead of taking the machine down. 0 = no limit.
MESHVIZ_WORKER_MEMORY_MB: int = env.int("MESHVIZ_WORKER_MEMORY_MB", default=2048)
CELERY_WORKER_MAX_MEMORY_PER_CHILD: int | None = (MESHVIZ_WORKER_MEMORY_MB * 1024 // 2) or None  # KiB
# Nothing lost (meshviz.analyses.tasks): heartbeat of a running analysis, when it counts as stale, runs allowed.
MESHVIZ_HEARTBEAT_SECONDS: float = env.float("MESHVIZ_HEARTBEAT_SECONDS", default=10.0)
MESHVIZ_STALE_SECONDS: float = env.float("MESHVIZ_STALE_SECONDS", default=40.0)
MESHVIZ_TASK_MAX_ATTEMPTS: int = env.int("MESHVIZ_TASK_MAX_ATTEMPTS", default=3)
MESHVIZ_REDISPATCH_GRACE_SECONDS: float = env.float("MESHVIZ_REDISPATCH_GRACE_SECONDS", default=5.0)
# Without a broker (tasks in-process), evidence larger than this (characters) is analysed in a background thread of
# the web process, with progress, so the upload answers at once; 0 analyses everything inside the request.
MESHVIZ_BACKGROUND_BYTES: int = env.int("MESHVIZ_BACKGROUND_BYTES", default=2 * 1024 * 1024)
# Largest results one analysis may store (PostgreSQL's jsonb limit is 256 MB); more is a failure with the reason.
MESHVIZ_MAX_RESULT_BYTES: int = env.int("MESHVIZ_MAX_RESULT_BYTES", default=16 * 1024 * 1024)

# --- live collection (meshviz.clusters) ---
# Fernet key(s), comma-separated, newest first: kubeconfigs are encrypted at rest with them. Required when DEBUG
# is false (collection is refused without it); with DEBUG on and no key, one is derived from SECRET_KEY.
MESHVIZ_ENCRYPTION_KEY: str = env.str("MESHVIZ_ENCRYPTION_KEY", default="")
# Seconds one collection may take (each API request gets at most 30 of them), retries of a transient failure
# inside it, and Celery retries (with backoff) of a collection that failed with a retryable error.
MESHVIZ_COLLECT_TIMEOUT: float = env.float("MESHVIZ_COLLECT_TIMEOUT", default=120.0)
MESHVIZ_COLLECT_RETRIES: int = env.int("MESHVIZ_COLLECT_RETRIES", default=3)
MESHVIZ_COLLECT_TASK_RETRIES: int = env.int("MESHVIZ_COLLECT_TASK_RETRIES", default=3)
# Least privilege: who may use meshviz's own in-cluster service account (staff always; members of this group too).
MESHVIZ_IN_CLUSTER_GROUP: str = env.str("MESHVIZ_IN_CLUSTER_GROUP", default="")
# API servers on loopback, link-local and metadata addresses are never contacted; private ones (RFC 1918, ULA,
# CGNAT) only when this is true. MESHVIZ_COLLECT_ALLOWED_NETWORKS (CIDRs) are allowed whatever they are.
MESHVIZ_COLLECT_ALLOW_PRIVATE: bool = env.bool("MESHVIZ_COLLECT_ALLOW_PRIVATE", default=False)
MESHVIZ_COLLECT_ALLOWED_NETWORKS: list[str] = env.list("MESHVIZ_COLLECT_ALLOWED_NETWORKS", default=[])
# Timeout (seconds; for connecting and for each read) of every Kubernetes API request meshviz makes.
MESHVIZ_KUBE_TIMEOUT: float = env.float("MESHVIZ_KUBE_TIMEOUT", default=10.0)
# `celery -A meshviz beat`: re-collect watched pods that are due.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "meshviz-recollect-watched-pods": {
        "task": "meshviz.clusters.recollect_watched_pods",
        "schedule": env.float("MESHVIZ_WATCH_TICK_SECONDS", default=60.0),
    },
    # Nothing lost: send analyses the broker never accepted; requeue running ones whose worker died.
    "meshviz-redispatch-queued": {"task": "meshviz.analyses.redispatch_queued", "schedule": 15.0},
    "meshviz-reap-stale-running": {"task": "meshviz.analyses.reap_stale_running", "schedule": 15.0},
    "meshviz-apply-retention": {"task": "meshviz.analyses.apply_retention", "schedule": 3600.0},
}
# Analyses older than this many days are deleted by beat (bundled examples excepted); 0 keeps them forever.
MESHVIZ_RETENTION_DAYS: int = env.int("MESHVIZ_RETENTION_DAYS", default=0)
# --- end live collection ---

# --- logging: everything to stderr, which containers and CI collect ---
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Replaces Django's default "django" handlers so messages are printed once, DEBUG or not.
    "loggers": {"django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}},
}
