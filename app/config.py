"""Settings read from the environment; one class, no I/O beyond reading variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _dev_secret(instance: Path) -> str:
    """A random key kept in instance/ so development sessions survive a restart."""
    path = instance / "secret_key"
    instance.mkdir(parents=True, exist_ok=True)
    try:  # created once, private from the start; a racing process reads the winner's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


class Config:
    """Base settings. `from_env()` builds the running configuration."""

    CRM_ENV = "development"
    INSTANCE_DIR = ROOT / "instance"
    SQLALCHEMY_DATABASE_URI = f"sqlite:///{ROOT / 'instance' / 'crm.sqlite'}"
    # Stale connections are recycled rather than pinged: a ping is a round trip per request.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_recycle": 1800}
    REDIS_URL: str | None = None
    SECRET_KEY: str | None = None
    UPLOAD_DIR = str(ROOT / "instance" / "uploads")
    MAX_UPLOAD_MB = 25
    SOCKETIO_ALLOWED_ORIGINS: list[str] = []
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LANGUAGES = {"en": "English", "ru": "Русский"}
    LOGIN_RATE_LIMIT = "10 per minute"
    RATELIMIT_KEY_PREFIX = "crm"
    # Keys this installation keeps in Redis (presence) start with it: installations (and
    # test runs) sharing one Redis never see each other's keys.
    REDIS_KEY_PREFIX = "crm"
    BASE_URL: str | None = None  # https://crm.example.com: absolute links in e-mail
    RATELIMIT_HEADERS_ENABLED = True
    SMTP_HOST: str | None = None
    SMTP_PORT = 25
    SMTP_USER: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_TLS = False
    MAIL_FROM = "crm@localhost"
    API_TITLE = "CRM API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    PER_PAGE = 25
    TRUSTED_PROXIES = 0

    @classmethod
    def from_env(cls, **overrides) -> dict:
        env = os.environ
        conf = {k: getattr(cls, k) for k in dir(cls) if k.isupper()}
        conf["CRM_ENV"] = env.get("CRM_ENV", cls.CRM_ENV)
        conf["INSTANCE_DIR"] = Path(env.get("INSTANCE_DIR", cls.INSTANCE_DIR))
        conf["SQLALCHEMY_DATABASE_URI"] = env.get(
            "DATABASE_URL", f"sqlite:///{conf['INSTANCE_DIR'] / 'crm.sqlite'}"
        )
        conf["REDIS_URL"] = env.get("REDIS_URL") or None
        conf["UPLOAD_DIR"] = env.get("UPLOAD_DIR", str(conf["INSTANCE_DIR"] / "uploads"))
        conf["MAX_UPLOAD_MB"] = int(env.get("MAX_UPLOAD_MB", cls.MAX_UPLOAD_MB))
        origins = env.get("ALLOWED_ORIGINS", "")
        conf["SOCKETIO_ALLOWED_ORIGINS"] = [o.strip() for o in origins.split(",") if o.strip()]
        conf["SESSION_COOKIE_SECURE"] = _bool("SESSION_COOKIE_SECURE")
        conf["REMEMBER_COOKIE_SECURE"] = conf["SESSION_COOKIE_SECURE"]
        conf["SMTP_HOST"] = env.get("SMTP_HOST") or None
        conf["SMTP_PORT"] = int(env.get("SMTP_PORT", cls.SMTP_PORT))
        conf["SMTP_USER"] = env.get("SMTP_USER") or None
        conf["SMTP_PASSWORD"] = env.get("SMTP_PASSWORD") or None
        conf["SMTP_TLS"] = _bool("SMTP_TLS")
        conf["MAIL_FROM"] = env.get("MAIL_FROM", cls.MAIL_FROM)
        conf["SECRET_KEY"] = env.get("SECRET_KEY") or None
        conf["TRUSTED_PROXIES"] = int(env.get("TRUSTED_PROXIES", "0"))
        conf["REDIS_KEY_PREFIX"] = env.get("REDIS_KEY_PREFIX", cls.REDIS_KEY_PREFIX)
        conf["BASE_URL"] = (env.get("BASE_URL") or "").rstrip("/") or None
        conf.update(overrides)
        finish(conf)
        return conf


def finish(conf: dict) -> None:
    """Derive settings that depend on others; refuse to run production without a key."""
    if conf["SQLALCHEMY_DATABASE_URI"].startswith("postgresql://"):
        conf["SQLALCHEMY_DATABASE_URI"] = conf["SQLALCHEMY_DATABASE_URI"].replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    if not conf.get("SECRET_KEY"):
        if conf["CRM_ENV"] != "development":
            raise RuntimeError(f"SECRET_KEY must be set when CRM_ENV={conf['CRM_ENV']}")
        conf["SECRET_KEY"] = _dev_secret(Path(conf["INSTANCE_DIR"]))
    conf["MAX_CONTENT_LENGTH"] = conf["MAX_UPLOAD_MB"] * 1024 * 1024
    conf["RATELIMIT_STORAGE_URI"] = conf["REDIS_URL"] or "memory://"
