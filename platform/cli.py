"""The `metacrm` command (ARCHITECTURE.md): init, demo, serve, validate, plan, publish,
template install/upgrade, passwd, jobs run. Each command builds the app with `create_app()` and calls
the same runtime functions the API uses."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from metacrm.metadata.documents import Document, MetadataError, MetadataInvalid
from metacrm.metadata.layers import merge_layers
from metacrm.metadata.loader import load_package, load_path, load_seed_package
from metacrm.metadata.validation import validate_documents
from metacrm.runtime import accounts
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.errors import ServiceError
from metacrm.runtime.metastore import (export_template, install_template, plan_pending, publish_pending,
                                       set_instance_layer, uninstall_template)
from metacrm.runtime.publish import PublishRefused
from metacrm.runtime.web.context import EXTENSION

from .app import create_app
from .bootstrap import init_instance
from .bulk_cli import export_command, import_command


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


def _print_errors(errors: list[MetadataError]) -> None:
    for e in errors:
        click.echo(str(e), err=True)
    click.echo(f"{len(errors)} error(s).", err=True)


@click.group()
def main() -> None:
    """metacrm — a metadata-driven CRM."""


@main.command()
def init() -> None:
    """Create or upgrade the database, install the default CRM, create the admin."""
    app = create_app()
    result = _run_init(app)
    click.echo(f"Database ready: {app.config['DATABASE_URL']}")
    click.echo(f"Metadata version {result.version}"
               + (" (default CRM installed)" if result.installed_template else ""))
    _print_admin(result)


def _run_init(app: Any) -> Any:
    try:
        return init_instance(app)
    except MetadataInvalid as exc:
        _print_errors(exc.errors)
        sys.exit(1)


def _print_admin(result: Any) -> None:
    if result.admin_password:
        click.echo(f"Admin login: {result.admin_username} / {result.admin_password}")
    else:
        click.echo(f"Admin login: {result.admin_username} (password as set before; "
                   f"change it with `metacrm passwd {result.admin_username}`)")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Load the demo data and exit.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """init, plus demo data, then serve; prints the URL and the admin login."""
    from metacrm.runtime.demo import DEMO_PASSWORD, USERS, load_demo_data

    app = create_app()
    result = _run_init(app)
    rt = app.extensions[EXTENSION]
    summary = load_demo_data(rt)
    click.echo("Demo data: " + (", ".join(f"{n} {k}" for k, n in summary.items()) if summary
                                else "already loaded"))
    click.echo(f"Demo staff (password {DEMO_PASSWORD}): " + ", ".join(u.username for u in USERS))
    _print_admin(result)
    if not no_serve:
        click.echo(f"metacrm is running at http://{host}:{port}/  (Ctrl+C to stop)")
        app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the app with the development server (production: gunicorn 'metacrm.app:create_app()')."""
    app = create_app()
    click.echo(f"metacrm is running at http://{host}:{port}/")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def _with_requirements(docs: list[Document]) -> list[list[Document]]:
    """Base layers for a package that requires shipped templates (so it validates in context)."""
    layers: list[list[Document]] = []
    for d in docs:
        if d.kind == "template":
            for req in d.data.get("requires") or []:
                name = req if isinstance(req, str) else req.get("name")
                try:
                    pkg = load_seed_package(name)
                except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
                    continue
                layers.append(list(pkg.documents))
    return layers


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def validate(paths: tuple[str, ...]) -> None:
    """Validate metadata files, folders or template packages; every error with file and path."""
    all_errors: list[MetadataError] = []
    count = 0
    for path in paths:
        docs, errors = load_path(path)
        count += len(docs)
        merged = merge_layers(_with_requirements(docs) + [docs])
        all_errors += errors + validate_documents(merged)
    if all_errors:
        _print_errors(all_errors)
        sys.exit(1)
    click.echo(f"OK: {count} document(s) valid.")


def _stage_custom(conn: Any, custom: str | None) -> None:
    if custom:
        docs, errors = load_path(custom)
        if errors:
            raise MetadataInvalid(errors)
        set_instance_layer(conn, [d for d in docs if d.kind != "template"])


@main.command()
@click.option("--custom", type=click.Path(exists=True), help="Show the plan with this folder as the instance layer.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(custom: str | None, as_json: bool) -> None:
    """Show the pending metadata changes and the DDL they need (changes nothing)."""
    app = create_app()
    rt = app.extensions[EXTENSION]
    conn = rt.engine.connect()
    trans = conn.begin()
    try:
        _stage_custom(conn, custom)
        result = plan_pending(conn)
    except MetadataInvalid as exc:
        _print_errors(exc.errors)
        sys.exit(1)
    finally:
        trans.rollback()
        conn.close()
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if as_json else result.render())
    if not result.ok:
        sys.exit(1)


@main.command()
@click.option("--custom", type=click.Path(exists=True), help="Make this folder the instance layer, then publish.")
@click.option("--note", default=None, help="A note stored with the version.")
def publish(custom: str | None, note: str | None) -> None:
    """Apply the pending metadata changes (one transaction: all or nothing)."""
    app = create_app()
    rt = app.extensions[EXTENSION]
    try:
        with schema_transaction(rt.engine) as conn:
            _stage_custom(conn, custom)
            result = publish_pending(conn, note=note)
    except MetadataInvalid as exc:
        _print_errors(exc.errors)
        sys.exit(1)
    except PublishRefused as exc:
        click.echo(exc.plan.render(), err=True)
        sys.exit(1)
    except ServiceError as exc:
        _fail(exc.message)
    rt.invalidate()
    click.echo(result.render())
    click.echo("Nothing published." if result.empty else f"Published version {result.to_version}.")


@main.group()
def template() -> None:
    """Template packages: install, upgrade, uninstall, export."""


def _install(path: str, upgrade: bool) -> None:
    app = create_app()
    rt = app.extensions[EXTENSION]
    package = load_package(Path(path))
    try:
        with schema_transaction(rt.engine) as conn:
            result = install_template(conn, package, upgrade=upgrade)
    except MetadataInvalid as exc:
        _print_errors(exc.errors)
        _fail("Nothing was installed.")
    except PublishRefused as exc:
        click.echo(exc.plan.render(), err=True)
        _fail("Nothing was installed.")
    except ServiceError as exc:
        _fail(exc.message)
    click.echo(result.render())
    click.echo(f"{'Upgraded' if upgrade else 'Installed'} {package.name} {package.version} "
               f"(metadata version {result.to_version}).")


@template.command("install")
@click.argument("path", type=click.Path(exists=True))
def template_install(path: str) -> None:
    """Validate a template package (folder or zip) and install it; nothing changes if invalid."""
    _install(path, upgrade=False)


@template.command("upgrade")
@click.argument("path", type=click.Path(exists=True))
def template_upgrade(path: str) -> None:
    """Install a newer version of an installed template, keeping the instance's own layer."""
    _install(path, upgrade=True)


@template.command("uninstall")
@click.argument("name")
@click.option("--drop-data", is_flag=True,
              help="Drop the template's own tables and their rows instead of archiving them.")
@click.option("--yes", is_flag=True, help="Don't ask before dropping data.")
def template_uninstall(name: str, drop_data: bool, yes: bool) -> None:
    """Uninstall a template. Its entities and fields are archived (data kept) unless --drop-data."""
    if drop_data and not yes:
        click.confirm(f"Drop every table of {name}'s own entities, with their rows?", abort=True)
    app = create_app()
    rt = app.extensions[EXTENSION]
    try:
        with schema_transaction(rt.engine) as conn:
            result = uninstall_template(conn, name, drop_data=drop_data)
    except MetadataInvalid as exc:
        _print_errors(exc.errors)
        _fail("Nothing was uninstalled: the metadata left would be invalid (see above).")
    except PublishRefused as exc:
        click.echo(exc.plan.render(), err=True)
        _fail("Nothing was uninstalled.")
    except ServiceError as exc:
        _fail(exc.message)
    rt.invalidate()
    click.echo(result.render())
    click.echo(f"Uninstalled {name} (metadata version {result.to_version}); "
               + ("its tables were dropped." if drop_data else "its data is kept in archived tables and columns."))


@template.command("export")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@click.option("--name", required=True, help="The package's template name.")
@click.option("--version", "version", default="1.0.0", show_default=True)
@click.option("--whole", is_flag=True, help="Export all merged metadata, not just this instance's customisations.")
@click.option("--only", multiple=True, metavar="KIND/NAME",
              help="Export only this document (repeatable), e.g. entity/customer or view/customer/all.")
def template_export(out: str, name: str, version: str, whole: bool, only: tuple[str, ...]) -> None:
    """Write this instance's metadata as a template package (.zip) that `template install` takes."""
    app = create_app()
    rt = app.extensions[EXTENSION]
    try:
        with rt.engine.connect() as conn:
            data = export_template(conn, name, version, whole=whole, only=only)
    except MetadataInvalid as exc:
        _print_errors(exc.errors)
        _fail("Nothing was exported.")
    except ServiceError as exc:
        _fail(exc.message)
    Path(out).write_bytes(data)
    click.echo(f"Wrote {out} ({len(data):,} bytes).")


@main.group()
def jobs() -> None:
    """Background jobs (pool recycling and reminders)."""


@jobs.command("run")
@click.option("--only", "only", multiple=True, help="Run only this job (repeatable).")
def jobs_run(only: tuple[str, ...]) -> None:
    """Run the due background jobs once; safe from cron every few minutes, even twice at once."""
    from metacrm.runtime.jobs import JOBS, run_jobs

    app = create_app()
    try:
        results = run_jobs(app.extensions[EXTENSION], list(only) or None)
    except KeyError as exc:
        _fail(f"Unknown job(s): {exc.args[0]} (jobs: {', '.join(JOBS)}).")
    for name, counts in results.items():
        click.echo(f"{name}: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing to do"))


@main.command()
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def passwd(username: str, password: str) -> None:
    """Set a user's password."""
    app = create_app()
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        account = accounts.find_account(conn, username)
        if account is None:
            _fail(f"No user named {username}.")
        try:
            accounts.set_password(conn, account.id, password)
        except ServiceError as exc:
            _fail(exc.message)
    click.echo(f"Password of {username} changed.")


@main.group()
def dedup() -> None:
    """Duplicate-check (查重) keys."""


@dedup.command("rebuild")
def dedup_rebuild() -> None:
    """Rebuild every record's dedup match keys from the published rules (publish keeps them
    up to date; this repairs keys after data was written around the record service)."""
    from metacrm.runtime.dedup import sync_specs

    app = create_app()
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        written = sync_specs(conn, rt.catalog(conn).mset, rebuild=True)
    for entity, n in sorted(written.items()):
        click.echo(f"{entity}: {n} key(s)")
    click.echo(f"Rebuilt the dedup keys of {len(written)} entit{'y' if len(written) == 1 else 'ies'}.")


main.add_command(import_command)
main.add_command(export_command)


if __name__ == "__main__":
    main()
