"""The sign-in and sign-out pages, and the web shell's wiring: Bootstrap's files served
locally, CSRF protection for every form post, and the generated screens' blueprints.

The JSON API keeps its own defences (JSON-only bodies, same-site Origin check, tokens),
so CSRF tokens are required on the screens' posts and not on `/api/`.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_bootstrap import Bootstrap5
from flask_login import login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response

from metacrm.runtime import accounts
from metacrm.runtime.web import office_screens, screen_inbox, screen_lists, screen_records, screens
from metacrm.runtime.web.context import current_principal, runtime
from metacrm.runtime.web.screen_context import t, template_globals

from .auth import _session_user

bp = Blueprint("metacrm_pages", __name__)
csrf = CSRFProtect()


def _safe_next(target: str | None) -> str:
    """Only a path on this site: `next=//evil.example` must not become an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("metacrm_screens.workbench")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if current_principal() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", error=None, username="", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    addr = request.remote_addr
    with runtime().engine.begin() as conn:
        wait = accounts.sign_in_wait(conn, username, addr)
        if wait:
            return render_template("login.html", error=f"{t('wrong_login')} ({(wait + 59) // 60} min)",
                                   username=username, next=request.form.get("next", "")), 429
        account = accounts.authenticate(conn, username, password)
        accounts.record_sign_in(conn, username, addr, ok=account is not None and account.active)
    user = _session_user(account)
    if user is None:
        return render_template("login.html", error=t("wrong_login"), username=username,
                               next=request.form.get("next", "")), 401
    login_user(user, remember=request.form.get("remember") == "1")
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    logout_user()
    return redirect(url_for("metacrm_pages.login"))


@bp.post("/login/lang")
def login_language() -> Response:
    """Before sign-in, the language is a cookie."""
    chosen = request.form.get("language")
    response = redirect(url_for("metacrm_pages.login"))
    if chosen in ("en", "zh"):
        response.set_cookie("lang", chosen, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


def init_pages(app: Flask) -> None:
    """Call after the API blueprints are registered: every blueprint under `/api/` is
    exempt from CSRF tokens (it has its own defences), every other form post needs one."""
    app.config.setdefault("BOOTSTRAP_SERVE_LOCAL", True)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session, not one hour
    Bootstrap5(app)
    csrf.init_app(app)
    for blueprint in list(app.blueprints.values()):
        if (blueprint.url_prefix or "").startswith("/api/"):
            csrf.exempt(blueprint)
    app.register_blueprint(bp)
    for module in (screens, screen_lists, screen_records, screen_inbox, office_screens):
        app.register_blueprint(module.bp)
    app.context_processor(template_globals)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        return render_template("error.html", status=400, message=exc.description or "CSRF token missing."), 400


