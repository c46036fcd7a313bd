"""The app factory: configuration, the database, login, and the blueprints, wired once.

Nothing happens at import time; `create_app()` is what gunicorn, the CLI and the tests
call (`gunicorn 'metacrm.app:create_app()'`).
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask, jsonify, url_for

from metacrm.runtime.catalog import Runtime
from metacrm.runtime.db import make_engine
from metacrm.runtime.web.api import bp as api_bp
from metacrm.runtime.web.context import EXTENSION
from metacrm.runtime.web.errors import register_error_handlers
from metacrm.runtime.web.workflow_api import bp as workflow_bp

from .admin import bp as admin_bp
from .auth import init_auth
from .config import load_config


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = load_config(config)
    app = Flask(__name__, instance_path=settings["INSTANCE_PATH"])
    app.config.update(settings)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    engine = make_engine(settings["DATABASE_URL"])
    app.extensions[EXTENSION] = Runtime(engine, timezone=settings["TIMEZONE"])
    init_auth(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(workflow_bp)
    app.register_blueprint(admin_bp)
    register_error_handlers(app)

    @app.get("/")
    def index() -> Any:
        """What this server offers (the generated screens are mounted here when installed)."""
        return jsonify({
            "name": "metacrm",
            "api": url_for("metacrm_api.meta_entities", _external=True).rsplit("/meta", 1)[0],
            "openapi": url_for("metacrm_api.openapi", _external=True),
            "login": url_for("metacrm_auth.login", _external=True),
        })

    return app
