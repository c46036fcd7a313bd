"""Configuration as data: environment variables, then `instance/config.toml`, then defaults.

| setting | environment | default |
|---|---|---|
| database | METACRM_DATABASE_URL | SQLite file `instance/metacrm.db` |
| secret key | METACRM_SECRET_KEY | generated once into `instance/secret_key` |
| admin login (init) | METACRM_ADMIN_USERNAME / METACRM_ADMIN_PASSWORD | admin / random, printed |
| timezone for "today", relative dates | METACRM_TIMEZONE | UTC |
| secure cookies (HTTPS only) | METACRM_SECURE_COOKIES=1 | off |
| instance folder | METACRM_INSTANCE | ./instance |
| uploaded files' folder | METACRM_UPLOAD_DIR | `<instance>/uploads` |
| largest upload (MB) | METACRM_MAX_UPLOAD_MB | 20 |
"""
from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def instance_path() -> Path:
    return Path(os.environ.get("METACRM_INSTANCE", "instance")).resolve()


def _file_settings(instance: Path) -> dict[str, Any]:
    path = instance / "config.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        return {k.lower(): v for k, v in tomllib.load(fh).items()}


def _secret_key(instance: Path) -> str:
    path = instance / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of one app: overrides (tests) > environment > config.toml > defaults."""
    overrides = dict(overrides or {})
    instance = Path(overrides.get("INSTANCE_PATH") or instance_path())
    file = _file_settings(instance)

    def pick(key: str, env: str, default: Any = None) -> Any:
        if key in overrides:
            return overrides[key]
        if os.environ.get(env):
            return os.environ[env]
        return file.get(key.lower(), default)

    database_url = pick("DATABASE_URL", "METACRM_DATABASE_URL") or f"sqlite:///{instance / 'metacrm.db'}"
    secret = pick("SECRET_KEY", "METACRM_SECRET_KEY") or _secret_key(instance)
    timezone = pick("TIMEZONE", "METACRM_TIMEZONE", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SystemExit(f"METACRM_TIMEZONE: unknown timezone {timezone!r}") from None
    secure = str(pick("SECURE_COOKIES", "METACRM_SECURE_COOKIES", "")).lower() in ("1", "true", "yes")
    try:
        upload_mb = int(pick("MAX_UPLOAD_MB", "METACRM_MAX_UPLOAD_MB", 20))
    except (TypeError, ValueError):
        raise SystemExit("METACRM_MAX_UPLOAD_MB must be a whole number of megabytes") from None
    config = {
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url,
        "SECRET_KEY": secret,
        "TIMEZONE": timezone,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": secure,
        "JSON_SORT_KEYS": False,
        "MAX_CONTENT_LENGTH": max(50, upload_mb + 1) * 1024 * 1024,
        "MAX_UPLOAD_MB": upload_mb,
        "UPLOAD_DIR": pick("UPLOAD_DIR", "METACRM_UPLOAD_DIR"),
    }
    config.update({k: v for k, v in overrides.items() if k not in config or k in overrides})
    return config
