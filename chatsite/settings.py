"""Django settings: every knob comes from the environment, with defaults that run on a fresh machine.

Defaults: SQLite file under ./var, in-memory channel layer, built-in offline model, DEBUG off unless asked.
`DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to the Redis channel layer. `.env.example` lists every variable.
"""

from __future__ import annotations

import os
from pathlib import Path

# One BLAS thread per process, set before numpy loads: a vector search is a memory-bound matrix-vector product, and
# a second thread on a shared 2-core machine waits on the other processes (100k x 256: 15 ms with one thread, 25 ms
# with two, docs/benchmarks.md). Scale out with processes instead. An operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

from assistant_chat.providers.registry import parse_aliases  # no Django: safe before the apps load

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CHAT_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "")
    return [item.strip() for item in value.split(",") if item.strip()] if value.strip() else default


def _secret_key() -> str:
    # A stable per-install key without asking the operator: generated once into var/, never committed.
    configured = os.environ.get("DJANGO_SECRET_KEY", "")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key = get_random_secret_key()
        key_file.write_text(key)
        key_file.chmod(0o600)
        return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# --- TLS behind a reverse proxy (README "Deploying"; deploy/chat.env.example) ---
# DJANGO_HTTPS=true says the site is served over HTTPS by a proxy that sets X-Forwarded-Proto; it turns on every
# setting below, each of which its own variable can still change.
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", HTTPS) else None
)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Joining the browsers' preload list is a decision: an explicit DJANGO_SECURE_HSTS_PRELOAD=false silences the
# check that asks for it; left unset, `check --deploy` keeps asking.
SILENCED_SYSTEM_CHECKS = (
    ["security.W021"]
    if os.environ.get("DJANGO_SECURE_HSTS_PRELOAD", "").strip().lower() in {"0", "false", "no", "off"}
    else []
)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_tasks",
    "assistant_chat.jobs.apps.JobQueueConfig",  # django-tasks-db, named for the admin
    "assistant_chat",
    "assistant_chat.jobs",
    "assistant_chat.rooms",  # the live room's signal receivers (access changes reach open sockets)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
# The Pinecone SDKs call paths without a trailing slash; a redirect would turn their POSTs into GETs.
APPEND_SLASH = False

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
            ],
        },
    },
]

WSGI_APPLICATION = "chatsite.wsgi.application"
ASGI_APPLICATION = "chatsite.asgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL", "") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
# Connections are kept (and health-checked before reuse): room sockets make short queries in bursts (a mass join),
# and opening a connection for each one was what made handshakes wait.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets readers (search, pages) run while an ingestion job writes; the timeout rides out short write locks.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# Redis Sentinel instead of one Redis address: "host:port,host:port" and the monitored master's name. The rooms
# recover from a failover as from any Redis outage (docs/rooms.md).
REDIS_SENTINELS = env_list("REDIS_SENTINELS", [])
if REDIS_URL or REDIS_SENTINELS:
    # redis-py 8 gives sockets a 5 s read timeout, the same as channels_redis's blocking pop: an idle process would
    # see its receive() fail. The read timeout must outlast the pop.
    _redis_host: dict = {"socket_timeout": env_float("REDIS_SOCKET_TIMEOUT", 30.0)}
    if REDIS_SENTINELS:
        _redis_host.update(
            master_name=os.environ.get("REDIS_SENTINEL_MASTER", "mymaster"),
            sentinels=[(item.rsplit(":", 1)[0], int(item.rsplit(":", 1)[1])) for item in REDIS_SENTINELS],
            db=env_int("REDIS_DB", 0),
        )
    else:
        _redis_host["address"] = REDIS_URL
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_redis_host], "capacity": env_int("CHANNEL_CAPACITY", 1000)},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": env_int("CHANNEL_CAPACITY", 1000)},
        }
    }

# The cache holds rate-limit counters (assistant_chat/ratelimits.py): shared through Redis when scaled out.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("STATIC_MANIFEST", not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Serve files straight from the apps without collectstatic (development and the live test servers).
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", DEBUG)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Uploads: the API accepts files up to FILE_MAX_BYTES; Django must not refuse the multipart body first.
FILE_MAX_BYTES = env_int("FILE_MAX_BYTES", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Request limits (enforced by chatsite/server.py as a request arrives, before Django reads the body) ---
# Any body but an upload (JSON API calls, forms); Django's own limit matches it for what reaches Django another way.
REQUEST_MAX_BODY_BYTES = env_int("REQUEST_MAX_BODY_BYTES", 2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BODY_BYTES
# An upload's body may be FILE_MAX_BYTES plus this much for the form around the file (metadata, boundaries).
REQUEST_UPLOAD_OVERHEAD_BYTES = env_int("REQUEST_UPLOAD_OVERHEAD_BYTES", 64 * 1024)
# The longest request target (path and query string); longer ones get 414.
REQUEST_MAX_URL_BYTES = env_int("REQUEST_MAX_URL_BYTES", 8 * 1024)
# After a refusal, what the client still sends is read and dropped for at most this long, so it reads the answer.
REQUEST_LINGER_SECONDS = env_float("REQUEST_LINGER_SECONDS", 5.0)

# Ingestion runs as a durable job in the worker process (assistant_chat/jobs); an upload waits at most this long
# for a small file to finish so that clients see `Available` at once instead of polling.
INGEST_UPLOAD_WAIT_SECONDS = env_float("INGEST_UPLOAD_WAIT_SECONDS", 2.0)
# Untrusted files are parsed in a child process under these limits (assistant_chat/knowledge/sandbox.py); a file
# over one ends ProcessingFailed with a message naming the setting.
PARSE_TIMEOUT_SECONDS = env_float("PARSE_TIMEOUT_SECONDS", 60.0)  # wall clock, and the CPU-time limit
PARSE_MAX_MEMORY_BYTES = env_int("PARSE_MAX_MEMORY_BYTES", 1024 * 1024 * 1024)  # the parser's address space
PARSE_MAX_PAGES = env_int("PARSE_MAX_PAGES", 2000)
PARSE_MAX_TEXT_CHARS = env_int("PARSE_MAX_TEXT_CHARS", 10_000_000)
PARSE_MAX_UNPACKED_BYTES = env_int("PARSE_MAX_UNPACKED_BYTES", 100 * 1024 * 1024)  # a DOCX's zip, inflated
PARSE_MAX_COMPRESSION_RATIO = env_int("PARSE_MAX_COMPRESSION_RATIO", 100)  # per zip part over 1 MB
CHUNK_MAX_TOKENS = env_int("CHUNK_MAX_TOKENS", 256)
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 32)

# The `host` the API reports for assistants; the SDKs need an absolute http(s) URL. Empty: the request's origin.
ASSISTANT_PUBLIC_HOST = os.environ.get("ASSISTANT_PUBLIC_HOST", "").rstrip("/")
# After DELETE, older clients (API ≤ 2025-10) poll describe and fail on an immediate 404; answer them with the
# transitional state (`Deleting` / `Terminating`) for this long.
API_TOMBSTONE_SECONDS = env_float("API_TOMBSTONE_SECONDS", 30.0)
SIGNED_URL_MAX_AGE_SECONDS = env_int("SIGNED_URL_MAX_AGE_SECONDS", 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Model providers (issue: chat engine). A provider without a key is shown as unavailable; nothing else breaks.
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
GEMINI_API_KEY = os.environ.get("GEMINI_API_KEY", "")
GEMINI_BASE_URL = os.environ.get("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com")
# A remote Pinecone (or another instance of this server) that remote assistants answer through.
PINECONE_API_KEY = os.environ.get("PINECONE_API_KEY", "")
PINECONE_ASSISTANT_HOST = os.environ.get("PINECONE_ASSISTANT_HOST", "").rstrip("/")
PROVIDER_CONNECT_TIMEOUT = env_float("PROVIDER_CONNECT_TIMEOUT", 10.0)
# The longest silence allowed between two bytes of a model stream (reasoning models think for minutes).
PROVIDER_READ_TIMEOUT = env_float("PROVIDER_READ_TIMEOUT", 300.0)
PROVIDER_MAX_RETRIES = env_int("PROVIDER_MAX_RETRIES", 3)
# Embeddings (search by meaning). The offline embedder is built in; OpenAI's and Gemini's use the keys above; any
# other model id an assistant names is served by this OpenAI-compatible /v1/embeddings server (Ollama, vLLM, ...).
EMBEDDINGS_BASE_URL = os.environ.get("EMBEDDINGS_BASE_URL", "").rstrip("/")
EMBEDDINGS_API_KEY = os.environ.get("EMBEDDINGS_API_KEY", "")
EMBEDDINGS_TIMEOUT = env_float("EMBEDDINGS_TIMEOUT", 60.0)
# How many fused candidates search ranks again by their best sentence (built-in embedder only; 0: none). Each costs
# a few hundred token lookups per question; see docs/benchmarks.md for quality and latency at 0, 10 and 20.
SEARCH_RERANK_DEPTH = env_int("SEARCH_RERANK_DEPTH", 20)
# Threads per process that run a question's vector search on a connection of their own while its word search runs
# on the caller's (0: one after the other; knowledge/overlap.py). Each keeps a database connection open.
SEARCH_THREADS = env_int("SEARCH_THREADS", 2)
# Blank lines sent on /chat streams while a model is silent, so proxies and clients keep the connection open.
CHAT_HEARTBEAT_SECONDS = env_float("CHAT_HEARTBEAT_SECONDS", 15.0)
# Pace of the built-in offline model, in words per second (0: as fast as possible; bin/run uses 25 for the demo).
OFFLINE_MODEL_WORDS_PER_SECOND = env_float("OFFLINE_MODEL_WORDS_PER_SECOND", 0.0)
# Model ids answered by another model, "alias=target,..." (e.g. "gpt-4o=offline"); staff add more in the admin
# (Model aliases), which win for the same alias. bin/run's demo maps the seed models to offline when their key is
# not set. Checked here, so a malformed value stops the server at start with the entry it did not understand.
MODEL_ALIASES_TEXT = os.environ.get("MODEL_ALIASES", "")
try:
    MODEL_ALIASES = parse_aliases(MODEL_ALIASES_TEXT)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# The chat endpoints' database work runs on this many threads, each keeping its connection for this many seconds
# (Django's own request path opens one per request under ASGI); see assistant_chat/api/db_threads.py.
CHAT_DB_THREADS = env_int("CHAT_DB_THREADS", 4)
CHAT_DB_CONN_MAX_AGE = env_int("CHAT_DB_CONN_MAX_AGE", 300)

# --- Rooms ---
# Longest message a member may send, and how many messages one member may send per window (all rooms together).
CHAT_MESSAGE_MAX_CHARS = env_int("CHAT_MESSAGE_MAX_CHARS", 8000)
CHAT_RATE_LIMIT_MESSAGES = env_int("CHAT_RATE_LIMIT_MESSAGES", 20)
CHAT_RATE_LIMIT_SECONDS = env_int("CHAT_RATE_LIMIT_SECONDS", 60)
# Tokens arriving within this window go out as one websocket frame (fewer frames for big rooms, same text).
CHAT_COALESCE_MS = env_int("CHAT_COALESCE_MS", 40)
# How many earlier messages of the conversation the model sees.
CHAT_HISTORY_MESSAGES = env_int("CHAT_HISTORY_MESSAGES", 40)
# A running turn's lease: renewed (and its text so far saved) every CHAT_TURN_CHECKPOINT_SECONDS whatever the model
# does; one not renewed for this long means its process died, and another process ends the turn (members learn
# within about lease + 2 s). Long enough to ride out a slow database write, short enough not to keep members waiting.
CHAT_TURN_LEASE_SECONDS = env_float("CHAT_TURN_LEASE_SECONDS", 6.0)
CHAT_TURN_CHECKPOINT_SECONDS = env_float("CHAT_TURN_CHECKPOINT_SECONDS", 1.0)
# A turn's final save is retried this long while the database is unreachable (the text waits in memory).
CHAT_TURN_SAVE_RETRY_SECONDS = env_float("CHAT_TURN_SAVE_RETRY_SECONDS", 120.0)
# On SIGTERM, running answers get this long to finish; the rest are saved whole (interrupted) and ended for members.
CHAT_DRAIN_SECONDS = env_float("CHAT_DRAIN_SECONDS", 10.0)
# Extra origins allowed to open room websockets (the site's own hosts from ALLOWED_HOSTS always are).
CHAT_ALLOWED_ORIGINS = env_list("CHAT_ALLOWED_ORIGINS", [])
# The site's public address, e.g. https://chat.example.com, for links that leave the site (the Markdown export's
# links to cited files). Empty: the address the request came in on (behind a proxy, set this or forward the Host).
SITE_URL = os.environ.get("SITE_URL", "").rstrip("/")

# --- Browser security (issue 13) ---
# Hosts whose https images messages may show; every other image in a message becomes a link (no tracking pixels,
# no requests to the readers' own network). Empty: images from this site only.
CHAT_IMAGE_HOSTS = env_list("CHAT_IMAGE_HOSTS", [])
# A Content-Security-Policy on every page (django-csp): scripts, styles, fonts and sockets from this site only,
# images from this site and CHAT_IMAGE_HOSTS. Inline style attributes stay allowed (Markdown table alignment and
# the admin use them; they cannot run script), inline scripts do not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", *(f"https://{host}" for host in CHAT_IMAGE_HOSTS)],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Room sockets: how many one member may hold open in one server process, and how many new conversations and
# renames one member may make per CHAT_RATE_LIMIT_SECONDS (all rooms together).
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20)
CHAT_RATE_LIMIT_CONVERSATIONS = env_int("CHAT_RATE_LIMIT_CONVERSATIONS", 10)

# --- Background jobs (assistant_chat/jobs) ---
# "worker": jobs are rows in the database, run by `manage.py run_worker` processes (bin/run starts them).
# "immediate": a job runs in the process that queues it, once its transaction commits (unit tests only: nothing
# survives a crash, and /readyz says so).
JOBS_MODE = os.environ.get("JOBS_MODE", "worker").strip().lower() or "worker"
TASKS = {
    "default": {
        "BACKEND": (
            "django_tasks.backends.immediate.ImmediateBackend"
            if JOBS_MODE == "immediate"
            else "django_tasks_db.DatabaseBackend"
        ),
        "QUEUES": ["default"],
    }
}
JOBS_WORKERS = env_int("JOBS_WORKERS", 1)  # worker processes bin/run starts (systemd: one unit instance each)
JOBS_POLL_SECONDS = env_float("JOBS_POLL_SECONDS", 0.25)  # an idle worker looks for new jobs this often
JOBS_HEARTBEAT_SECONDS = env_float("JOBS_HEARTBEAT_SECONDS", 1.0)  # each worker writes its heartbeat this often
# /readyz reports the workers gone when the newest heartbeat is older than this.
JOBS_HEARTBEAT_STALE_SECONDS = env_float("JOBS_HEARTBEAT_STALE_SECONDS", 4.0)
# A running job whose worker has been silent this long (or whose process is gone) is run again.
JOBS_LEASE_SECONDS = env_float("JOBS_LEASE_SECONDS", 30.0)
JOBS_MAX_ATTEMPTS = env_int("JOBS_MAX_ATTEMPTS", 3)  # a job that failed (or lost its worker) this often gives up
JOBS_RETRY_DELAY_SECONDS = env_float("JOBS_RETRY_DELAY_SECONDS", 5.0)  # before the 2nd attempt; doubles after
# How often a worker queues work that has no job: files Processing, index rows pending after their job gave up.
JOBS_RECONCILE_SECONDS = env_float("JOBS_RECONCILE_SECONDS", 60.0)

# --- Health and metrics (assistant_chat/monitoring) ---
# Every process writes its metrics under METRICS_DIR (prometheus_client's multi-process mode); bin/run and the
# systemd units empty it before the processes start. It must be set before prometheus_client is imported.
METRICS_DIR = Path(os.environ.get("METRICS_DIR", "") or VAR_DIR / "metrics")
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
# /metrics answers clients in these networks (behind the proxy: the address in X-Forwarded-For, which Daphne's
# --proxy-headers reads), or any client sending `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
