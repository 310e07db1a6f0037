"""Start-up: the token signing key, and the first admin application.

- The signing key comes from BATON_TOKEN_SIGNING_KEY, or else from the `server_keys` table,
  created there by whichever process starts first, so every process on one database verifies
  every other's tokens.
- BATON_ADMIN_KEY_ID/BATON_ADMIN_KEY_SECRET set: that access key exists (on application
  `admin`, with role ADMIN) and its secret is the configured one (containers, CI).
- Otherwise, when no application exists at all: application `admin` with role ADMIN and a new
  access key, written to $BATON_DATA_DIR/admin-key.json (mode 0600). The log names the file,
  never the secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import passwords
from app.auth.permissions import Role
from app.clock import Clock
from app.config import Settings
from app.errors import ConfigError
from app.store import auth as repo
from app.store.db import Database

if TYPE_CHECKING:
    from app.auth.service import AuthService

log = logging.getLogger("baton.auth")

SIGNING_KEY_NAME = "jwt-hs256"
ADMIN_APP_NAME = "admin"
KEY_FILE_NAME = "admin-key.json"


async def signing_key(db: Database, clock: Clock, settings: Settings) -> bytes:
    if settings.token_signing_key is not None:
        return settings.token_signing_key.get_secret_value().encode()
    async with db.read() as conn:
        value = await repo.get_server_key(conn, SIGNING_KEY_NAME)
    if value is None:
        candidate = secrets.token_urlsafe(48)
        try:
            async with db.write() as conn:
                value = await repo.get_server_key(conn, SIGNING_KEY_NAME)
                if value is None:
                    await repo.insert_server_key(conn, SIGNING_KEY_NAME, candidate, clock.now_ms())
                    value = candidate
        except sa.exc.IntegrityError:  # another process inserted it first: use theirs
            async with db.read() as conn:
                value = await repo.get_server_key(conn, SIGNING_KEY_NAME)
    if value is None:  # pragma: no cover - the insert above or the other process's is there
        raise ConfigError("cannot load the token signing key from the database")
    return value.encode()


async def bootstrap_admin(service: AuthService) -> None:
    settings = service.settings
    if settings.admin_key_id and settings.admin_key_secret is not None:
        await seed_admin_key(
            service, settings.admin_key_id, settings.admin_key_secret.get_secret_value()
        )
    else:
        await create_first_admin(service)


async def _admin_app_id(service: AuthService, conn: AsyncConnection) -> str:
    app = await repo.get_application_by_name(conn, ADMIN_APP_NAME)
    if app is not None:
        app_id: str = app["id"]
    else:
        app_id = str(uuid.uuid4())
        await repo.insert_application(conn, app_id, ADMIN_APP_NAME, "baton", service.clock.now_ms())
    await repo.add_role(conn, service.db.ops, app_id, Role.ADMIN.value)
    return app_id


async def seed_admin_key(service: AuthService, key_id: str, secret: str) -> None:
    db = service.db
    async with db.read() as conn:
        key = await repo.get_access_key(conn, key_id)
    if key is not None:
        if await passwords.averify_secret(secret, key["secret_hash"]):
            return
        new_hash = await passwords.ahash_secret(secret)
        async with db.write() as conn:
            await repo.set_access_key_secret(conn, key_id, new_hash)
        log.info("access key %s: secret replaced by BATON_ADMIN_KEY_SECRET", key_id)
        return
    secret_hash = await passwords.ahash_secret(secret)
    try:
        async with db.write() as conn:
            if await repo.get_access_key(conn, key_id) is not None:
                return  # another process seeded it meanwhile
            app_id = await _admin_app_id(service, conn)
            await repo.insert_access_key(conn, key_id, app_id, secret_hash, service.clock.now_ms())
    except sa.exc.IntegrityError:
        return  # another process seeded it meanwhile
    service._changed()
    log.info(
        "access key %s (application '%s', role ADMIN) seeded from BATON_ADMIN_KEY_ID",
        key_id,
        ADMIN_APP_NAME,
    )


async def create_first_admin(service: AuthService) -> None:
    db = service.db
    async with db.read() as conn:
        if await repo.any_application(conn):
            return
    secret = passwords.new_secret()
    secret_hash = await passwords.ahash_secret(secret)
    key_id = uuid.uuid4().hex
    path = service.settings.data_dir / KEY_FILE_NAME
    try:
        async with db.write() as conn:
            if await repo.any_application(conn):
                return
            app_id = await _admin_app_id(service, conn)
            await repo.insert_access_key(conn, key_id, app_id, secret_hash, service.clock.now_ms())
            # Inside the transaction: if the file cannot be written, no key exists either.
            await asyncio.to_thread(write_key_file, path, key_id, secret)
    except sa.exc.IntegrityError:
        return  # another process bootstrapped the same database meanwhile
    except OSError as exc:
        raise ConfigError(
            f"cannot write the admin access key to {path}: {exc.strerror or exc}"
        ) from None
    service._changed()
    log.warning(
        "created application '%s' (role ADMIN) with access key %s; its keyId and keySecret "
        "are in %s (readable by this user only)",
        ADMIN_APP_NAME,
        key_id,
        path,
    )


def write_key_file(path: Path, key_id: str, secret: str) -> None:
    """{keyId, keySecret} as JSON, mode 0600 from the moment the file exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"keyId": key_id, "keySecret": secret}, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
