"""The app factory: configuration, the database, login, and the blueprints, wired once.

Nothing happens at import time; `create_app()` is what gunicorn, the CLI and the tests
call (`gunicorn 'metacrm.app:create_app()'`).
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from metacrm.designer.editors import init_editors
from metacrm.designer.web import init_designer
from metacrm.runtime.catalog import Runtime
from metacrm.runtime.db import make_engine
from metacrm.runtime.web.api import bp as api_bp
from metacrm.runtime.web.picker_api import bp as pickers_bp
from metacrm.runtime.web.bulk_api import bp as bulk_api_bp
from metacrm.runtime.web.dedup_api import bp as dedup_bp
from metacrm.runtime.web.context import EXTENSION
from metacrm.runtime.web.errors import register_error_handlers
from metacrm.runtime.web.files_api import bp as files_bp
from metacrm.runtime.web.office_api import bp as office_api_bp
from metacrm.runtime.web.pools import bp as pools_bp
from metacrm.runtime.web.reports_api import bp as reports_api_bp
from metacrm.runtime.web.dashboard import bp as dashboard_bp
from metacrm.runtime.web.workflow_api import bp as workflow_bp

from .admin import bp as admin_bp
from .admin_pages import init_admin_pages
from .admin_pools import bp as admin_pools_bp
from .auth import init_auth
from .config import load_config
from .pages import init_pages


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
    app.register_blueprint(bulk_api_bp)
    app.register_blueprint(dedup_bp)
    app.register_blueprint(workflow_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(pools_bp)
    app.register_blueprint(admin_pools_bp)
    app.register_blueprint(pickers_bp)
    app.register_blueprint(files_bp)
    app.register_blueprint(reports_api_bp)
    init_designer(app)  # before init_pages: its /api/ blueprint is CSRF-exempt by prefix
    init_editors(app)  # views, dedup rules, workflows (before init_pages, for the same reason)
    app.register_blueprint(office_api_bp)
    init_pages(app)
    init_admin_pages(app)
    app.register_blueprint(dashboard_bp)
    register_error_handlers(app)

    return app
