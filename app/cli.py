"""`baton serve | migrate | keys create`: the operator's entry points.

Every failure to start ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from app.auth.permissions import Role
from app.config import Settings
from app.errors import ConfigError

log = logging.getLogger("baton")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        k: v
        for k, v in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "database_url": getattr(args, "database_url", None),
            "data_dir": getattr(args, "data_dir", None),
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
        _ = settings.database  # parse the URL now, so a bad one fails here
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting BATON_{field.upper()}: {first['msg']}") from None
    return settings


async def _migrate(settings: Settings) -> None:
    from app.store.db import Database, check_reachable
    from app.store.migrate import upgrade

    db = Database(settings.database, pool_size=1)
    try:
        await check_reachable(db)
        await upgrade(db)
    finally:
        await db.dispose()


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    asyncio.run(_migrate(settings))
    print(f"database at {settings.database.safe()} is up to date")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    settings = _settings(args)
    asyncio.run(_migrate(settings))
    # Here, not only in the app's startup, so a missing or bad key is one line, no traceback.
    from app.secrets.keyring import load_keyring

    load_keyring(settings)
    log.info(
        "serving on http://%s:%s (database %s)",
        settings.host,
        settings.port,
        settings.database.safe(),
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # The app's own counters; uvicorn's access log would double the work per request.
        access_log=settings.log_level == "DEBUG",
    )


async def _create_key(settings: Settings, app_name: str, roles: list[Role]) -> tuple[str, str]:
    from app.auth.service import AuthService
    from app.clock import SystemClock
    from app.store.db import Database, check_reachable
    from app.store.migrate import upgrade

    db = Database(settings.database, pool_size=1)
    try:
        await check_reachable(db)
        await upgrade(db)
        return await AuthService(db, SystemClock(), settings).create_key_for(app_name, roles)
    finally:
        await db.dispose()


def cmd_keys_create(args: argparse.Namespace) -> None:
    """Print a new access key as JSON on stdout (the only place its secret ever appears)."""
    settings = _settings(args)
    app_name = args.app.strip()
    if not app_name or len(app_name) > 255:
        raise ConfigError("--app must be a name of 1 to 255 characters")
    roles = [Role(r) for r in dict.fromkeys(args.role or [])]
    key_id, secret = asyncio.run(_create_key(settings, app_name, roles))
    print(json.dumps({"keyId": key_id, "keySecret": secret}))


def cmd_secrets_generate_key(args: argparse.Namespace) -> None:
    """Print a new random key entry for BATON_SECRETS_KEY."""
    from app.secrets.keyring import generate_key_text

    try:
        print(generate_key_text(args.key_id))
    except ValueError as exc:
        raise ConfigError(f"--key-id: {exc}") from None


async def _rekey(settings: Settings) -> tuple[str, int, int]:
    from app.auth.service import AuthService
    from app.clock import SystemClock
    from app.secrets.keyring import load_keyring
    from app.secrets.service import SecretService
    from app.store.db import Database, check_reachable
    from app.store.migrate import upgrade

    keyring = load_keyring(settings)
    db = Database(settings.database, pool_size=1)
    try:
        await check_reachable(db)
        await upgrade(db)
        clock = SystemClock()
        service = SecretService(db, clock, settings, keyring, AuthService(db, clock, settings))
        values, documents = await service.rekey()
    finally:
        await db.dispose()
    return keyring.current_key_id, values, documents


def cmd_secrets_rekey(args: argparse.Namespace) -> None:
    """Re-seal everything sealed under an older key with the first key of BATON_SECRETS_KEY."""
    from app.errors import BatonError
    from app.secrets.keyring import SealError

    settings = _settings(args)
    try:
        key_id, values, documents = asyncio.run(_rekey(settings))
    except (SealError, BatonError) as exc:
        reason = exc.message if isinstance(exc, BatonError) else str(exc)
        raise ConfigError(
            f"rekey stopped: {reason}; keep every old key in BATON_SECRETS_KEY"
        ) from None
    print(
        f"re-sealed {values} secret values and {documents} workflow/task documents "
        f"under key '{key_id}'"
    )


def _add_db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="overrides BATON_DATABASE_URL")
    p.add_argument("--data-dir", help="overrides BATON_DATA_DIR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton", description="Baton workflow server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations, then serve the API")
    serve.add_argument("--host", help="overrides BATON_HOST")
    serve.add_argument("--port", type=int, help="overrides BATON_PORT")
    _add_db_options(serve)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    _add_db_options(migrate)
    migrate.set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="manage access keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser(
        "create",
        help="create an access key (and the application, if missing); print it as JSON",
    )
    create.add_argument("--app", required=True, help="application name")
    create.add_argument(
        "--role",
        action="append",
        choices=[r.value for r in Role],
        help="role to give the application (repeatable)",
    )
    _add_db_options(create)
    create.set_defaults(func=cmd_keys_create)

    secrets = sub.add_parser("secrets", help="manage the keys that encrypt secrets")
    secrets_sub = secrets.add_subparsers(dest="secrets_command", required=True)
    generate = secrets_sub.add_parser(
        "generate-key", help="print a new random key entry for BATON_SECRETS_KEY"
    )
    generate.add_argument("--key-id", default="k1", help="the key's id (default k1)")
    generate.set_defaults(func=cmd_secrets_generate_key)
    rekey = secrets_sub.add_parser(
        "rekey",
        help="re-seal every stored secret under the first key of BATON_SECRETS_KEY",
    )
    _add_db_options(rekey)
    rekey.set_defaults(func=cmd_secrets_rekey)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        level = Settings().log_level
    except ValidationError:
        level = "INFO"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every plugin and step at INFO; only its problems matter to an operator.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        args.func(args)
    except ConfigError as exc:
        print(f"baton: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
