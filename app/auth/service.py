"""AuthService: applications, access keys, tokens, and the authentication/authorization every
request goes through.

Verifying a token checks its signature and expiry, then that its access key is still active
and its application still exists, reading the application's *current* roles. That lookup is
cached per process for CACHE_MS at most and dropped at once, in this process, by every change
made through this service; other processes see a change within CACHE_MS.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import sqlalchemy as sa

from app.auth import passwords
from app.auth.limits import FailureLimiter
from app.auth.permissions import (
    ANONYMOUS_ADMIN,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    Role,
    roles_granting,
)
from app.auth.tokens import TokenSigner, invalid_token
from app.clock import Clock
from app.config import Settings
from app.errors import (
    BadRequest,
    BatonError,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from app.schemas.auth import UserInfo
from app.store import auth as repo
from app.store.db import Database

log = logging.getLogger("baton.auth")

Json = dict[str, Any]

ACTIVE = "ACTIVE"
INACTIVE = "INACTIVE"
CACHE_MS = 5_000
MAX_CACHED = 10_000
# Who created what, when it was not an API caller.
SYSTEM_USER = "baton"


class InvalidCredentials(BatonError):
    """401 from /api/token *without* a token error code. The clients refresh and retry on
    INVALID_TOKEN/EXPIRED_TOKEN; a wrong secret answered that way would loop them."""

    status = 401


class GrantChecker(Protocol):
    """Explicit grants on one resource (e.g. READ on secret `x`), beyond what roles give.
    The secrets feature plugs its grant store in here (AuthService.grants)."""

    async def allows(self, principal: Principal, permission: Permission, resource: str) -> bool: ...


class NoGrants:
    async def allows(self, principal: Principal, permission: Permission, resource: str) -> bool:
        return False


def known_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        supported = ", ".join(r.value for r in Role)
        raise BadRequest(f"Unknown role '{role}'. Supported roles: {supported}") from None


def extract_token(headers: Mapping[str, str]) -> str:
    """`X-Authorization: <token>` (Orkes), or `Authorization: Bearer <token>` (curl)."""
    value = (headers.get("x-authorization") or "").strip()
    if not value:
        scheme, _, rest = (headers.get("authorization") or "").strip().partition(" ")
        value = rest.strip() if scheme.lower() == "bearer" else ""
    elif value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if not value:
        raise invalid_token("Token cannot be null or empty")
    return value


def _app_json(row: Json, roles: list[str]) -> Json:
    return {
        "id": row["id"],
        "name": row["name"],
        "createdBy": row["created_by"],
        "updatedBy": row["updated_by"],
        "createTime": row["created_at"],
        "updateTime": row["updated_at"],
        "roles": sorted(roles),
    }


def _key_json(row: Json) -> Json:
    return {"id": row["id"], "createdAt": row["created_at"], "status": row["status"]}


def _app_not_found(app_id: str) -> NotFound:
    return NotFound(f"Application '{app_id}' not found")


def _key_not_found(key_id: str) -> NotFound:
    return NotFound(f"Access key '{key_id}' not found")


def new_key_id() -> str:
    return uuid.uuid4().hex


class AuthService:
    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.enabled = settings.auth_enabled
        self.grants: GrantChecker = NoGrants()
        self.limiter = FailureLimiter(clock)
        self._signer: TokenSigner | None = None
        self._principals: dict[str, tuple[int, Principal | None]] = {}
        self._generation = 0

    async def start(self) -> None:
        """Load (or create) the signing key, then bootstrap the admin application."""
        from app.auth import bootstrap

        key = await bootstrap.signing_key(self.db, self.clock, self.settings)
        self._signer = TokenSigner(key, self.clock, self.settings.token_ttl_seconds)
        if self.enabled:
            await bootstrap.bootstrap_admin(self)

    @property
    def signer(self) -> TokenSigner:
        if self._signer is None:
            raise RuntimeError("AuthService.start() has not run")
        return self._signer

    # -- tokens -----------------------------------------------------------------------

    def ensure_enabled(self) -> None:
        if not self.enabled:
            # 404 is how the official clients recognise a server without authentication.
            raise NotFound("Authentication is disabled on this server (BATON_AUTH_ENABLED=false)")

    async def issue_token(self, key_id: str, key_secret: str, expiration_ms: int | None) -> str:
        self.ensure_enabled()
        if expiration_ms is not None and expiration_ms < 0:
            raise ValidationFailed(
                [FieldError("expiration", "tokens without expiry are not issued", expiration_ms)]
            )
        self.limiter.check(key_id)
        async with self.db.read() as conn:
            key = await repo.get_access_key(conn, key_id)
            app = await repo.get_application(conn, key["application_id"]) if key else None
            roles = await repo.roles_of(conn, app["id"]) if app else []
        stored_hash = key["secret_hash"] if key is not None else None
        if not await passwords.averify_secret(key_secret, stored_hash) or app is None:
            self.limiter.record_failure(key_id)
            raise InvalidCredentials("Invalid access key id or secret")
        self.limiter.reset(key_id)
        assert key is not None
        if key["status"] != ACTIVE:
            raise InvalidCredentials("The access key is inactive")
        ttl = self.settings.token_ttl_seconds
        if expiration_ms:
            ttl = min(ttl, max(1, math.ceil(expiration_ms / 1000)))
        return self.signer.issue(
            application_id=app["id"],
            application_name=app["name"],
            key_id=key_id,
            roles=sorted(roles),
            ttl_seconds=ttl,
        )

    def token_claims(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """The claims of the caller's token ({} with authentication disabled)."""
        if not self.enabled:
            return {}
        return self.signer.verify(extract_token(headers)).raw

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if not self.enabled:
            return ANONYMOUS_ADMIN
        claims = self.signer.verify(extract_token(headers))
        principal = await self._principal(claims.key_id)
        if principal is None or principal.id != claims.application_id:
            raise invalid_token(
                "Token is no longer valid: its access key or application was removed or disabled"
            )
        return principal

    async def authorize(
        self, principal: Principal, permission: Permission, resource: str | None = None
    ) -> None:
        if principal.has(permission):
            return
        if resource is not None and await self.grants.allows(principal, permission, resource):
            return
        granting = ", ".join(r.value for r in roles_granting(permission))
        raise Forbidden(
            f"'{principal.name}' is not allowed to do this: it needs permission "
            f"{permission.value}, which these roles grant: {granting}"
        )

    def user_info(self, principal: Principal, claims: dict[str, Any] | None = None) -> Json:
        """Orkes' /api/token/userInfo shape; wrapped as {user, claims} when claims are given."""
        info = UserInfo(
            id=principal.id,
            name=principal.name,
            roles=[
                {
                    "name": role.value,
                    "permissions": [{"name": p.value} for p in sorted(ROLE_PERMISSIONS[role])],
                }
                for role in sorted(principal.roles)
            ],
            uuid=principal.id,
            applicationUser=principal.key_id is not None,
        ).to_json()
        if claims is None:
            return info
        return {"user": info, "claims": claims}

    # -- the principal cache ----------------------------------------------------------

    async def _principal(self, key_id: str) -> Principal | None:
        now = self.clock.now_ms()
        cached = self._principals.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        principal = await self._load_principal(key_id)
        # A change committed while we were reading must not be shadowed by what we read.
        if generation == self._generation:
            if len(self._principals) >= MAX_CACHED:
                self._principals.clear()
            self._principals[key_id] = (now + CACHE_MS, principal)
        return principal

    async def _load_principal(self, key_id: str) -> Principal | None:
        async with self.db.read() as conn:
            key = await repo.get_access_key(conn, key_id)
            if key is None or key["status"] != ACTIVE:
                return None
            app = await repo.get_application(conn, key["application_id"])
            if app is None:
                return None
            roles = await repo.roles_of(conn, app["id"])
        return Principal(
            id=app["id"],
            name=app["name"],
            roles=frozenset(Role(r) for r in roles if r in Role.__members__),
            key_id=key_id,
        )

    async def principal_for_application(self, app_id: str) -> Principal | None:
        """The application with its current roles, as the principal a workflow it started
        runs as; None when it no longer exists."""
        async with self.db.read() as conn:
            app = await repo.get_application(conn, app_id)
            if app is None:
                return None
            roles = await repo.roles_of(conn, app_id)
        return Principal(
            id=app["id"],
            name=app["name"],
            roles=frozenset(Role(r) for r in roles if r in Role.__members__),
        )

    def _changed(self) -> None:
        """Call after committing any change to applications, roles or keys."""
        self._generation += 1
        self._principals.clear()

    # -- applications -----------------------------------------------------------------

    async def create_application(self, name: str, caller: Principal) -> Json:
        name = name.strip()
        app_id = str(uuid.uuid4())
        now = self.clock.now_ms()
        try:
            async with self.db.write() as conn:
                if await repo.get_application_by_name(conn, name) is not None:
                    raise _name_taken(name)
                await repo.insert_application(conn, app_id, name, caller.name, now)
                row = await repo.get_application(conn, app_id)
        except sa.exc.IntegrityError:
            raise _name_taken(name) from None
        assert row is not None
        return _app_json(row, [])

    async def list_applications(self) -> list[Json]:
        async with self.db.read() as conn:
            rows = await repo.list_applications(conn)
            roles = await repo.roles_by_application(conn)
        return [_app_json(r, roles.get(r["id"], [])) for r in rows]

    async def get_application(self, app_id: str) -> Json:
        async with self.db.read() as conn:
            row = await repo.get_application(conn, app_id)
            if row is None:
                raise _app_not_found(app_id)
            return _app_json(row, await repo.roles_of(conn, app_id))

    async def update_application(self, app_id: str, name: str, caller: Principal) -> Json:
        name = name.strip()
        now = self.clock.now_ms()
        try:
            async with self.db.write() as conn:
                if await repo.get_application(conn, app_id) is None:
                    raise _app_not_found(app_id)
                other = await repo.get_application_by_name(conn, name)
                if other is not None and other["id"] != app_id:
                    raise _name_taken(name)
                await repo.rename_application(conn, app_id, name, caller.name, now)
                row = await repo.get_application(conn, app_id)
                roles = await repo.roles_of(conn, app_id)
        except sa.exc.IntegrityError:
            raise _name_taken(name) from None
        self._changed()
        assert row is not None
        return _app_json(row, roles)

    async def delete_application(self, app_id: str) -> Json:
        async with self.db.write() as conn:
            if not await repo.delete_application(conn, app_id):
                raise _app_not_found(app_id)
        self._changed()
        return {"message": f"Deleted Application '{app_id}'"}

    async def add_role(self, app_id: str, role: str, caller: Principal) -> Json:
        checked = known_role(role)
        async with self.db.write() as conn:
            if await repo.get_application(conn, app_id) is None:
                raise _app_not_found(app_id)
            await repo.add_role(conn, self.db.ops, app_id, checked.value)
            await repo.touch_application(conn, app_id, caller.name, self.clock.now_ms())
            row = await repo.get_application(conn, app_id)
            roles = await repo.roles_of(conn, app_id)
        self._changed()
        assert row is not None
        return _app_json(row, roles)

    async def remove_role(self, app_id: str, role: str, caller: Principal) -> Json:
        checked = known_role(role)
        async with self.db.write() as conn:
            if await repo.get_application(conn, app_id) is None:
                raise _app_not_found(app_id)
            if await repo.remove_role(conn, app_id, checked.value):
                await repo.touch_application(conn, app_id, caller.name, self.clock.now_ms())
            row = await repo.get_application(conn, app_id)
            roles = await repo.roles_of(conn, app_id)
        self._changed()
        assert row is not None
        return _app_json(row, roles)

    # -- access keys ------------------------------------------------------------------

    async def create_access_key(self, app_id: str) -> Json:
        """The only answer that ever carries the secret; only its hash is stored."""
        secret = passwords.new_secret()
        secret_hash = await passwords.ahash_secret(secret)
        key_id = new_key_id()
        async with self.db.write() as conn:
            if await repo.get_application(conn, app_id) is None:
                raise _app_not_found(app_id)
            await repo.insert_access_key(conn, key_id, app_id, secret_hash, self.clock.now_ms())
        return {"id": key_id, "secret": secret}

    async def list_access_keys(self, app_id: str) -> list[Json]:
        async with self.db.read() as conn:
            if await repo.get_application(conn, app_id) is None:
                raise _app_not_found(app_id)
            return [_key_json(r) for r in await repo.list_access_keys(conn, app_id)]

    async def _key_of(self, conn: Any, app_id: str, key_id: str) -> Json:
        if await repo.get_application(conn, app_id) is None:
            raise _app_not_found(app_id)
        key = await repo.get_access_key(conn, key_id)
        if key is None or key["application_id"] != app_id:
            raise _key_not_found(key_id)
        return key

    async def toggle_access_key(self, app_id: str, key_id: str) -> Json:
        async with self.db.write() as conn:
            key = await self._key_of(conn, app_id, key_id)
            status = INACTIVE if key["status"] == ACTIVE else ACTIVE
            await repo.set_access_key_status(conn, key_id, status)
        self._changed()
        return _key_json({**key, "status": status})

    async def delete_access_key(self, app_id: str, key_id: str) -> Json:
        async with self.db.write() as conn:
            await self._key_of(conn, app_id, key_id)
            await repo.delete_access_key(conn, key_id)
        self._changed()
        return {"message": f"Deleted Access key '{key_id}'"}

    async def application_by_key(self, key_id: str) -> Json:
        async with self.db.read() as conn:
            key = await repo.get_access_key(conn, key_id)
            row = await repo.get_application(conn, key["application_id"]) if key else None
            if row is None:
                raise _key_not_found(key_id)
            return _app_json(row, await repo.roles_of(conn, row["id"]))

    # -- operators (CLI, bootstrap) ---------------------------------------------------

    async def create_key_for(self, app_name: str, roles: list[Role]) -> tuple[str, str]:
        """`baton keys create`: the named application (created if missing) gets the roles
        and a new access key. Returns (key id, secret)."""
        secret = passwords.new_secret()
        secret_hash = await passwords.ahash_secret(secret)
        key_id = new_key_id()
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            app = await repo.get_application_by_name(conn, app_name)
            if app is None:
                app_id = str(uuid.uuid4())
                await repo.insert_application(conn, app_id, app_name, SYSTEM_USER, now)
            else:
                app_id = app["id"]
            for role in roles:
                await repo.add_role(conn, self.db.ops, app_id, role.value)
            await repo.insert_access_key(conn, key_id, app_id, secret_hash, now)
        self._changed()
        return key_id, secret


def _name_taken(name: str) -> Conflict:
    return Conflict(f"Application with name '{name}' already exists")
