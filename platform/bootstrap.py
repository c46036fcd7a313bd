"""`metacrm init`: system tables up to date, the default CRM installed, an admin present.

Idempotent: running it again upgrades the system tables and changes nothing else.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from flask import Flask

from metacrm.runtime import accounts
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.metastore import install_seeds
from metacrm.runtime.migrate import upgrade_system_tables
from metacrm.runtime.web.context import EXTENSION

DEFAULT_TEMPLATE = "crm-default"
#: Installed right after the default CRM (each requires the ones before it).
DEFAULT_MODULES = ("office",)


@dataclass(frozen=True)
class InitResult:
    admin_username: str
    admin_password: str | None  # None when the admin existed already
    installed_template: bool
    version: int


def init_instance(app: Flask) -> InitResult:
    rt = app.extensions[EXTENSION]
    upgrade_system_tables(rt.engine)
    username = os.environ.get("METACRM_ADMIN_USERNAME") or "admin"
    password = None
    with schema_transaction(rt.engine) as conn:
        admin = accounts.find_account(conn, username)
        if admin is None:
            password = os.environ.get("METACRM_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            admin = accounts.create_user(conn, username, password, display_name="Administrator",
                                         is_admin=True, roles=("admin",))
        added = install_seeds(conn, (DEFAULT_TEMPLATE, *DEFAULT_MODULES), by=admin.id)
    rt.invalidate()
    catalog = rt.catalog()
    return InitResult(username, password, DEFAULT_TEMPLATE in added, catalog.version)
