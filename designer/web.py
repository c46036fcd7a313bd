"""The designer's pages (`/designer/...`, admins only) and its wiring into the app.

Server-rendered pages over drafts.py; every page extends `designer/base.html`, which
carries the persistent draft bar ("Draft — N changes — Validate · Plan · Publish").
The pages' small scripts talk to the JSON API (api.py) for live checks and saves.
Non-admins get 403 on every page (and on the blueprint's static files).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response

from metacrm.runtime.errors import Unauthorized
from metacrm.runtime.web import ui_text
from metacrm.runtime.web.context import current_principal, runtime
from metacrm.runtime.web.screen_context import init_screen_blueprint

from . import drafts
from .api import bp as api_bp
from .api import require_admin
from .text import DESIGNER_TEXT

bp = init_screen_blueprint(Blueprint("metacrm_designer", __name__, url_prefix="/designer",
                                     template_folder="templates", static_folder="static",
                                     static_url_path="/static"))


@bp.before_request
def _admins_only() -> None:
    if current_principal() is None:
        raise Unauthorized("Sign in first.")  # pages redirected already; this is the static files
    require_admin()
    if request.endpoint == "metacrm_designer.static":
        return
    with runtime().engine.connect() as conn:
        g.designer_changes = drafts.draft_changes(conn)


@bp.context_processor
def _bar() -> dict[str, Any]:
    """The draft bar's numbers, read once per designer page (empty elsewhere)."""
    return {"draft_changes": g.get("designer_changes", []), "designer_endpoints": current_app.view_functions}


@bp.get("/")
def index() -> Response:
    return redirect(url_for("metacrm_designer.entities"))


def init_designer(app: Flask) -> None:
    """Mount the designer (call before `init_pages`, so its API is CSRF-exempt by prefix)."""
    ui_text.TEXT.update(DESIGNER_TEXT)
    from . import pages_entities, pages_forms, pages_history, pages_publish, pages_templates  # noqa: F401 - routes on bp
    app.register_blueprint(api_bp)
    app.register_blueprint(bp)
