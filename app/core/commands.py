"""`flask crm ...`: demo data, due jobs, the server with its scheduler, an admin account."""

from __future__ import annotations

import os

import click
from flask import current_app
from flask.cli import with_appcontext

from app.extensions import db


@click.group()
def crm():
    """CRM commands."""


@crm.command("demo")
@with_appcontext
def demo():
    """Load the demo company (safe to run again)."""
    from app.core.demo import DEMO_PASSWORD, DEMO_PEOPLE, load_all

    done = load_all()
    click.echo(f"Demo loaded: {', '.join(done)}")
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for email, name, is_admin, _lang in DEMO_PEOPLE:
        click.echo(f"  {email:<22} {name}{'  (administrator)' if is_admin else ''}")


@crm.group("jobs")
def jobs_group():
    """Due-time jobs."""


@jobs_group.command("run-due")
@click.option("--only", help="Run just this job.")
@with_appcontext
def run_due(only):
    """Run every job that has due work (for cron)."""
    from app.core.jobs import run_due as run

    for name, result in run(only=only).items():
        click.echo(f"{name}: {result}")


@crm.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--jobs/--no-jobs", default=True, help="Run due jobs every minute in-process.")
@with_appcontext
def serve(host, port, jobs):
    """Serve the CRM with live updates (Socket.IO, threading mode)."""
    from app.core.jobs import start_scheduler
    from app.extensions import socketio

    app = current_app._get_current_object()
    if jobs:
        start_scheduler(app)
    click.echo(f"Serving on http://{host}:{port}")
    os.environ.pop("FLASK_RUN_FROM_CLI", None)  # the CLI forbids app.run(); this is the server
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, use_reloader=False,
                 log_output=False)


@crm.command("create-admin")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.password_option()
@with_appcontext
def create_admin(email, name, password):
    """Create the first administrator."""
    from app.core import services
    from app.core.errors import DomainError

    try:
        services.bootstrap_admin({"email": email, "name": name, "password": password})
    except DomainError as exc:
        db.session.rollback()
        details = " ".join(" ".join(v) for v in exc.fields.values())
        raise click.ClickException(f"{exc.message} {details}".strip()) from exc
    db.session.commit()
    click.echo(f"Administrator {email} created.")
