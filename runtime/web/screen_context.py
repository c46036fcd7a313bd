"""What every screen request shares: the signed-in user (or a redirect to /login), the
language, the template globals (navigation, the bell, `t()`), and errors as pages.

The screens' blueprints call `init_screen_blueprint(bp)` so each gets the same
sign-in guard and error pages without a base class.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import notifications
from ..errors import ServiceError, Unauthorized
from ..principal import Principal
from .context import current_principal, runtime
from .screen_support import SHELL_COUNTS, display, local_input, navigation, option_label
from .ui_text import translate

LANGUAGES = ("en", "zh")


def language() -> str:
    """The user's language; before sign-in, the `lang` cookie or the browser's preference."""
    principal = current_principal()
    if principal is not None and principal.language in LANGUAGES:
        return principal.language
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def t(key: str, **values: Any) -> str:
    return translate(key, language(), **values)


def screen_principal() -> Principal:
    principal = current_principal()
    if principal is None:
        raise Unauthorized("Sign in first.")
    return principal


def _guard() -> Response | None:
    if request.endpoint and request.endpoint.endswith(".static"):
        return None  # the login page needs the stylesheet and script too
    principal = current_principal()
    if principal is None:
        return redirect(url_for("metacrm_pages.login", next=request.full_path.rstrip("?")))
    load_shell(principal)
    return None


def load_shell(principal: Principal) -> None:
    """Read the navigation and the bell's count before the view opens its transaction:
    a page renders inside the view's connection, and on SQLite a second connection
    opened while rendering would wait on the first one's lock."""
    if "metacrm_nav" in g:
        return
    rt = runtime()
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        g.metacrm_nav = navigation(catalog, principal, language(), current_app.view_functions)
        g.metacrm_unread = notifications.unread_count(conn, principal.user_id) if principal.user_id else 0
        g.metacrm_counts = {name: count(conn, principal) for name, count in SHELL_COUNTS.items()}


def _error_page(exc: ServiceError) -> Any:
    if isinstance(exc, Unauthorized):
        return redirect(url_for("metacrm_pages.login", next=request.full_path.rstrip("?")))
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return exc.to_dict(), exc.status
    return render_template("error.html", status=exc.status, message=exc.message), exc.status


def init_screen_blueprint(bp: Blueprint) -> Blueprint:
    bp.before_request(_guard)
    bp.register_error_handler(ServiceError, _error_page)
    return bp


def template_globals() -> dict[str, Any]:
    """Globals of every page: `t`, `lang`, the user, the navigation and the bell's count."""
    principal = current_principal()
    lang = language()
    tz = runtime().timezone
    out: dict[str, Any] = {"t": t, "lang": lang, "me": principal, "display": display, "timezone": tz,
                           "option_label": option_label, "local_input": lambda v: local_input(v, tz)}
    out["nav"] = g.get("metacrm_nav", [])
    out["unread"] = g.get("metacrm_unread", 0)
    out["nav_counts"] = g.get("metacrm_counts", {})
    return out


def flash_t(key: str, category: str = "success", **values: Any) -> None:
    flash(t(key, **values), category)
