"""The CRM application factory: reads like a table of contents, does no I/O."""

from __future__ import annotations

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    from app.config import Config

    app = Flask(__name__, instance_path=None)
    app.config.update(Config.from_env(**(config or {})))
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Behind a proxy the client's address (rate limits, audit) comes from X-Forwarded-For.
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_request_hooks(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from app.config import ROOT
    from app.core import i18n, realtime
    from app.extensions import babel, csrf, db, limiter, login_manager, migrate, socketio

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True,
                    compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    socketio.init_app(
        app,
        async_mode="threading",
        client_manager=realtime.message_queue(app.config["REDIS_URL"], app.config["REDIS_KEY_PREFIX"]),
        cors_allowed_origins=app.config["SOCKETIO_ALLOWED_ORIGINS"] or None,
        json=None,
    )


# Each module package has register(app): blueprints, API, nav entry, registries.
MODULES = ["core", "orgchart", "messaging", "tasks", "clients"]


def register_blueprints(app: Flask) -> None:
    from importlib import import_module

    for name in MODULES:
        import_module(f"app.{name}").register(app)


def register_errorhandlers(app: Flask) -> None:
    from app.core.errorhandlers import register as register_handlers

    register_handlers(app)


def register_request_hooks(app: Flask) -> None:
    from app.core.transaction import register as register_transaction

    register_transaction(app)


def register_commands(app: Flask) -> None:
    from app.core.commands import crm

    app.cli.add_command(crm)
