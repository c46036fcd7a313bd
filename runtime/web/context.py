"""How the runtime's blueprints find the engine, the catalog and the acting user.

The shell (`metacrm.app`) stores the `Runtime` in `app.extensions["metacrm"]` and, after
login, puts a `Principal` in `g.metacrm_principal`; everything below this module takes
them as arguments.
"""
from __future__ import annotations

from flask import current_app, g

from ..catalog import Runtime
from ..errors import Unauthorized
from ..principal import Principal

EXTENSION = "metacrm"


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]


def current_principal() -> Principal | None:
    return g.get("metacrm_principal")


def require_principal() -> Principal:
    principal = current_principal()
    if principal is None:
        raise Unauthorized("Sign in, or send an API token as 'Authorization: Bearer <token>'.")
    return principal
