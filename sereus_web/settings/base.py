"""Settings shared by every mode. Values come from ``sereus_web.config`` (environment variables).

The defaults are those of a personal node on this machine: bound to 127.0.0.1, DEBUG off, all data
in the data directory, no external server. ``dev`` and ``test`` adjust them, ``production`` adds
what a node served over HTTPS on its owner's domain needs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from sereus_web.config import config_from_env, data_dir_prepare, secret_key_load

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SEREUS = config_from_env()
DATA_DIR = data_dir_prepare(SEREUS.data_dir)

SECRET_KEY = secret_key_load(DATA_DIR)
DEBUG = SEREUS.debug
ALLOWED_HOSTS = SEREUS.allowed_hosts
# Origins a browser may POST from besides the page's own (which Django always accepts).
CSRF_TRUSTED_ORIGINS = [f"https://{SEREUS.domain}"] if SEREUS.domain else []

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's with an ASGI one. Our apps come before the
    # libraries so their commands (runworker) and templates take precedence.
    "daphne",
    "apps.core",
    "apps.p2p",
    "apps.messaging",
    "apps.checklist",
    "apps.voting",
    "apps.timeline",
    "apps.ledger",
    "apps.market",
    "apps.medical",
    "apps.cadre",
    "apps.storage",
    "apps.identity",
    "apps.website",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.CSPMiddleware",  # django-csp's, the policy built once
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.LoginRequiredMiddleware",  # Django's, DRF views exempt
    "apps.core.timezones.BrowserTimeZoneMiddleware",  # times in the reader's zone
    "apps.core.threads.admin_site.ThreadContextMiddleware",
]

ROOT_URLCONF = "sereus_web.urls"
ASGI_APPLICATION = "sereus_web.asgi.application"
WSGI_APPLICATION = None

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
                "apps.core.context_processors.node",
            ],
        },
    },
]

DATABASES = {
    "default": (
        dj_database_url.parse(SEREUS.database_url, conn_max_age=60, conn_health_checks=True)
        if SEREUS.database_url
        else {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "node.sqlite3",
            # Kept open between requests (each request thread is reused, sereus_web.http_handler):
            # opening and setting up a SQLite connection cost more than a small API request's
            # queries. Django still closes one that errored or is in a leftover transaction.
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # WAL lets daphne, the p2p worker and Celery read while one of them writes;
                # IMMEDIATE avoids the "database is locked" upgrade deadlock of deferred writes.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Replicated models go to the current thread's database (apps.core.threads), the rest here.
DATABASE_ROUTERS = ["apps.core.threads.router.ThreadRouter"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "core:login"
LOGIN_REDIRECT_URL = "core:dashboard"
LOGOUT_REDIRECT_URL = "core:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# A local node serves static files straight from the source tree (no collectstatic step for
# `make run`); production collects and fingerprints them into STATIC_ROOT.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Security headers that hold on plain-HTTP localhost too; production adds the HTTPS ones.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Cookies are per host, not per port: two nodes on localhost:8000 and :8001 must not log each
# other out, so the cookie names carry a tag of the node's data dir.
_NODE_TAG = hashlib.blake2b(str(DATA_DIR).encode(), digest_size=4).hexdigest()
SESSION_COOKIE_NAME = f"sereus_session_{_NODE_TAG}"
CSRF_COOKIE_NAME = f"sereus_csrf_{_NODE_TAG}"

# No inline script or style anywhere (htmx's injected indicator style is switched off in base.html),
# nothing loaded from another origin, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "connect-src": [SELF],
        "worker-src": [SELF],
        "manifest-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# redis-py 8 reads with a 5 s socket timeout by default, which loses the race against
# channels-redis's 5 s blocking pop on an idle channel and kills the worker: wait longer.
REDIS_SOCKET_TIMEOUT = 30
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": SEREUS.redis_url, "socket_timeout": REDIS_SOCKET_TIMEOUT}],
                "prefix": f"{SEREUS.redis_prefix}:asgi",
            },
        }
        if SEREUS.scale_out
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}

# Celery: Redis in scale-out mode; otherwise kombu's filesystem transport in the data dir, consumed
# by a worker thread inside runnode, so tasks need no broker server and never run in a request.
CELERY_QUEUE_DIR = DATA_DIR / "tasks"
if SEREUS.scale_out:
    CELERY_BROKER_URL = SEREUS.redis_url
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "global_keyprefix": f"{SEREUS.redis_prefix}:celery:",
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.5,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_ENABLE_REMOTE_CONTROL = SEREUS.scale_out
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True

REST_FRAMEWORK = {
    # Token first: DRF takes the WWW-Authenticate header (and so 401 rather than 403 for a
    # missing or bad credential) from the first class.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.core.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.core.permissions.IsNodeOwner"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
REST_KNOX = {
    # Tokens printed by `node_token` are for scripts: they last until revoked.
    "TOKEN_TTL": None,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sereus node API",
    "DESCRIPTION": "The REST API of a Sereus Fabric node. Authenticate with the browser session "
    "or with `Authorization: Token <token>` (get one with `python manage.py node_token`).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the sidecar package: the docs page loads nothing from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several outputs have a "state" of their own: each set of choices gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "PollStateEnum": "apps.voting.selectors.POLL_STATES",
        "WriteStateEnum": "apps.core.threads.writes.STATES",
        "PostKindEnum": "apps.timeline.post.POST_KINDS",
        "ChitKindEnum": "apps.ledger.rules.KINDS",
        "NewChitKindEnum": "apps.ledger.apis.NEW_CHIT_KINDS",
        "ClaimStateEnum": "apps.identity.standing.CLAIM_STATES",
        "ChallengeStateEnum": "apps.identity.selectors.CHALLENGE_STATES",
    },
}

# Argon2id cost for sealing the master secret with a passphrase ("moderate": ~256 MiB, ~0.5 s).
SEREUS_PWHASH_COST = "moderate"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "filters": {"one_line": {"()": "sereus_web.logging.OneLine"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "console_one_line": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["one_line"],
        },
    },
    "root": {"handlers": ["console"], "level": SEREUS.log_level},
    "loggers": {
        # The DHT logs a warning on every normal stream close (shared/notes/py-libp2p.md).
        "libp2p": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        "celery": {"level": "WARNING"},
        "kombu": {"level": "ERROR"},
        "django.security.DisallowedHost": {
            "handlers": ["console_one_line"],
            "level": "WARNING",
            "propagate": False,
        },
    },
}
