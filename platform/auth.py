"""Login: sessions (Flask-Login) and API tokens, and the principal the runtime acts for.

Every request resolves to at most one active account — from the session cookie, or from
`Authorization: Bearer <token>` — and that account becomes a `Principal` in
`g.metacrm_principal`, which is all the runtime's web layer reads. A deactivated user
stops resolving at the next request, whichever way they authenticate.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, g, jsonify, request
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from metacrm.runtime import accounts
from metacrm.runtime.errors import PermissionDenied, TooManyRequests, BadRequest, Unauthorized
from metacrm.runtime.principal import Principal
from metacrm.runtime.web.api import request_json
from metacrm.runtime.web.context import require_principal, runtime

bp = Blueprint("metacrm_auth", __name__, url_prefix="/api/v1/auth")
login_manager = LoginManager()


class SessionUser(UserMixin):
    """What Flask-Login keeps per request: the account and its principal."""

    def __init__(self, account: accounts.Account, principal: Principal):
        self.account = account
        self.principal = principal
        # The sign-in generation rides in the id Flask-Login keeps in the session and the
        # remember-me cookie, so raising it (password change, deactivation) ends them all.
        self.id = f"{account.id}:{account.auth_epoch}"

    @property
    def is_active(self) -> bool:
        return self.account.active


def _session_user(account: accounts.Account | None) -> SessionUser | None:
    if account is None or not account.active:
        return None
    with runtime().engine.connect() as conn:
        return SessionUser(account, accounts.principal_for(conn, account))


@login_manager.user_loader
def _load_user(session_id: str) -> SessionUser | None:
    """The session's user, if the session was minted under their current sign-in
    generation ("<id>:<epoch>"; a bare "<id>" is a session from before epochs: epoch 0)."""
    user_id, _, epoch = session_id.partition(":")
    epoch = epoch or "0"
    if not (user_id.isascii() and user_id.isdigit() and epoch.isascii() and epoch.isdigit()) or len(user_id) > 10:
        return None
    with runtime().engine.connect() as conn:
        try:
            account = accounts.get_account(conn, int(user_id))
        except Exception:  # noqa: BLE001 - a deleted user is simply signed out
            return None
    if account.auth_epoch != int(epoch):
        return None
    return _session_user(account)


def keep_own_session(user_id: int) -> None:
    """After the signed-in user's own password changed, re-mint their session under the new
    generation: the change ends their *other* sessions, not the one that made it."""
    if g.get("metacrm_by_token") or not current_user.is_authenticated or current_user.account.id != user_id:
        return
    with runtime().engine.connect() as conn:
        account = accounts.get_account(conn, user_id)
    user = _session_user(account)
    if user is not None:
        login_user(user)


@login_manager.request_loader
def _load_from_token(req: Any) -> SessionUser | None:
    # The auth scheme is case-insensitive (RFC 9110 §11.1): "bearer x" is as good as "Bearer x".
    scheme, _, token = req.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with runtime().engine.begin() as conn:
        account = accounts.account_for_token(conn, token.strip())
    user = _session_user(account)
    if user is not None:
        g.metacrm_by_token = True
    return user


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _set_principal() -> None:
    g.metacrm_principal = current_user.principal if current_user.is_authenticated else None
    _refuse_cross_site()


def _refuse_cross_site() -> None:
    """Cookie-authenticated writes must come from this site (CSRF defence in depth).

    The API only takes JSON bodies, which a cross-site HTML form can't send, and the
    session cookie is SameSite=Lax; on top of that, a write carrying a browser's Origin
    (or Referer) header from another host is refused. Token requests carry no ambient
    credentials and are exempt."""
    if request.method not in UNSAFE_METHODS or g.get("metacrm_by_token"):
        return
    if g.metacrm_principal is None and request.endpoint != "metacrm_auth.login":
        return
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source and (source == "null" or urlsplit(source).netloc != request.host):
        raise PermissionDenied("Cross-site request refused: this request did not come from this site.")


def init_auth(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    app.before_request(_set_principal)
    app.register_blueprint(bp)


def _user_json(principal: Principal) -> dict[str, Any]:
    return {"id": principal.user_id, "username": principal.username, "display_name": principal.display_name,
            "language": principal.language, "is_admin": principal.is_admin, "roles": sorted(principal.roles),
            "department": principal.department_id}


@bp.post("/login")
def login() -> Any:
    body = request_json()
    if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
            or not isinstance(body.get("password"), str):
        raise BadRequest('Send {"username": ..., "password": ...} as JSON.')
    username, addr = body["username"], request.remote_addr
    with runtime().engine.begin() as conn:
        wait = accounts.sign_in_wait(conn, username, addr)
        if wait:
            raise TooManyRequests(f"Too many failed sign-ins; try again in {(wait + 59) // 60} minute(s).",
                                  retry_after=wait)
        account = accounts.authenticate(conn, username, body["password"])
        accounts.record_sign_in(conn, username, addr, ok=account is not None and account.active)
    user = _session_user(account)
    if user is None:
        raise Unauthorized("Wrong username or password, or the account is deactivated.")
    login_user(user, remember=bool(body.get("remember")))
    return jsonify({"user": _user_json(user.principal)})


@bp.post("/logout")
def logout() -> Any:
    logout_user()
    return jsonify({"ok": True})


@bp.get("/me")
def me() -> Any:
    return jsonify({"user": _user_json(require_principal())})


@bp.get("/tokens")
def tokens() -> Any:
    principal = require_principal()
    with runtime().engine.connect() as conn:
        return jsonify({"items": accounts.list_tokens(conn, principal.user_id)})


@bp.post("/tokens")
def create_token() -> Any:
    principal = require_principal()
    body = request_json()
    if body is None and request.get_data():  # a body is optional, but a broken one is an error
        raise BadRequest('Send {"name": ...} as JSON, or no body.')
    body = body or {}
    if not isinstance(body, dict):
        raise BadRequest('Send {"name": ...} as JSON.')
    with runtime().engine.begin() as conn:
        return jsonify(accounts.create_token(conn, principal.user_id, str(body.get("name") or ""))), 201


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int) -> Any:
    principal = require_principal()
    with runtime().engine.begin() as conn:
        accounts.revoke_token(conn, principal.user_id, token_id)
    return "", 204
