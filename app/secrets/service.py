"""SecretService: secrets at rest, for the Secrets API and for the engine.

Every value is sealed with the keyring under AAD `secret:<name>:<version>`. Each change of a
value is a new version (the current one plus the last few are kept, for rollback), a
rotation (`lastRotated*`), and an audit row; reads and workflow resolutions are audited too.
Audit rows and versions listings never hold a value, and no message raised here ever does.

Version numbers only grow, also across delete and re-create, so an ETag (`If-Match`) taken
from an earlier incarnation of a secret never matches a later one.

Permissions: roles first (SECRET_READ: ADMIN; SECRET_WRITE: ADMIN, METADATA_MANAGER), then
explicit grants on one secret name (Orkes' READ/CREATE/UPDATE/DELETE/EXECUTE), to an
application or to everyone holding a role.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth.permissions import ANONYMOUS_ADMIN, Permission, Principal, Role
from app.auth.service import AuthService
from app.clock import Clock
from app.config import Settings
from app.errors import (
    BadRequest,
    BatonError,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
)
from app.schemas.secrets import AuthorizationRequest, SubjectRef
from app.secrets.keyring import Keyring, SealError
from app.store import secrets as repo
from app.store.db import Database

log = logging.getLogger("baton.secrets")

Json = dict[str, Any]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
ACCESS_TYPES = ("READ", "CREATE", "UPDATE", "DELETE", "EXECUTE")
# What a role permission stands for, in grant terms.
_ROLE_ACCESS = {
    "READ": Permission.SECRET_READ,
    "EXECUTE": Permission.SECRET_READ,
    "CREATE": Permission.SECRET_WRITE,
    "UPDATE": Permission.SECRET_WRITE,
    "DELETE": Permission.SECRET_WRITE,
}
# Preconditions of a write (If-Match / If-None-Match): a version number, or one of these.
CREATE_ONLY = 0
MUST_EXIST = -1
ANONYMOUS = "anonymous"
AUDIT_LIMIT_MAX = 1000
_WRITE_ATTEMPTS = 3
_DETAIL_MAX = 1000


class UnsupportedMediaType(BatonError):
    status = 415


class SecretUnreadable(BatonError):
    """A stored value does not open (its key left the keyring, or the row was altered):
    a server-side fault, reported without the value."""

    status = 500


class Action:
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    READ = "READ"
    DELETE = "DELETE"
    ROLLBACK = "ROLLBACK"
    RESOLVE = "RESOLVE"
    RESOLVE_DENIED = "RESOLVE_DENIED"
    RESOLVE_FAILED = "RESOLVE_FAILED"
    WRITE = "WRITE"
    ROTATION_FAILED = "ROTATION_FAILED"


def aad(name: str, version: int) -> bytes:
    """Binds a sealed value to its secret and version: a ciphertext copied elsewhere fails."""
    return f"secret:{name}:{version}".encode()


def not_found(name: str) -> NotFound:
    return NotFound(f"Secret '{name}' not found")


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        # The name is echoed only when short: it is user input, not a value.
        shown = f" '{name}'" if len(name) <= 255 else ""
        raise BadRequest(
            f"Invalid secret name{shown}: use 1 to 255 characters of A-Z, a-z, 0-9, '_' and "
            "'-' ('.' would start a JSON path in ${workflow.secrets.NAME.path})"
        )


def check_value(value: str, max_bytes: int) -> None:
    if not value:
        raise BadRequest("The secret's value must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest("The secret's value is not valid Unicode text") from None
    if size > max_bytes:
        raise BadRequest(
            f"The secret's value is {size} bytes long; the limit is {max_bytes} bytes "
            "(BATON_SECRETS_MAX_VALUE_BYTES)"
        )


_FORM_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}


def value_from_body(body: bytes, content_type: str | None, max_bytes: int) -> str:
    """The value a PUT /api/secrets/{key} body carries.

    The body is the value itself, as text (Orkes stores the raw body). One exception, for the
    JavaScript SDK and the docs' curl example (`-d '"value"'`): a body that is exactly one
    JSON string literal (starts and ends with `"` and parses as a JSON string) is decoded.
    Anything else, JSON objects included, is stored verbatim."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _FORM_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media} is not accepted: send the secret's value as the raw body "
            "(text/plain or application/json)"
        )
    if not body:
        raise BadRequest("The request body is the secret's value and must not be empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The secret's value must be UTF-8 text") from None
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, str):
            text = decoded
    check_value(text, max_bytes)
    return text


def parse_precondition(if_match: str | None, if_none_match: str | None) -> int | None:
    """`If-Match: 3` or `"3"` (an ETag from an earlier answer): write only over version 3.
    `If-Match: 0` or `If-None-Match: *`: create only. `If-Match: *`: update only."""
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise BadRequest("If-None-Match supports only '*' (create only)")
        if if_match is not None:
            raise BadRequest("Send If-Match or If-None-Match, not both")
        return CREATE_ONLY
    if if_match is None:
        return None
    text = if_match.strip()
    if text == "*":
        return MUST_EXIST
    if text.startswith("W/"):
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text.isdigit() or len(text) > 9:
        raise BadRequest('If-Match must be a secret version (a number, or an ETag like "3")')
    return int(text)


def etag(version: int) -> str:
    return f'"{version}"'


def _subjects(principal: Principal) -> list[tuple[str, str]]:
    """Who a grant can name to reach this caller: the application, or one of its roles."""
    return [("APP", principal.id), *(("ROLE", r.value) for r in sorted(principal.roles))]


def _detail(text: str | None) -> str | None:
    return text[:_DETAIL_MAX] if text else None


@dataclass(frozen=True)
class Written:
    name: str
    version: int
    restored_from: int | None = None

    def to_json(self) -> Json:
        body: Json = {"name": self.name, "version": self.version}
        if self.restored_from is not None:
            body["restoredFrom"] = self.restored_from
        return body


class SecretGrants:
    """AuthService's grant hook: an explicit grant on the secret named in the path stands in
    for the role permission. The service then checks the exact access an operation needs."""

    _WANTED: ClassVar[dict[Permission, set[str]]] = {
        Permission.SECRET_READ: {"READ"},
        Permission.SECRET_WRITE: {"CREATE", "UPDATE", "DELETE"},
    }

    def __init__(self, db: Database) -> None:
        self.db = db

    async def allows(self, principal: Principal, permission: Permission, resource: str) -> bool:
        wanted = self._WANTED.get(permission)
        if not wanted:
            return False
        async with self.db.read() as conn:
            granted = await repo.granted_access(conn, _subjects(principal), [resource])
        return bool(granted.get(resource, set()) & wanted)


class SecretService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        keyring: Keyring,
        auth: AuthService,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.keyring = keyring
        self.auth = auth
        # Called after every committed change of a value (write, rollback, delete), e.g. so
        # the engine's masking forgets stale values.
        self.on_change: Callable[[], None] | None = None
        # token -> plaintext, so known_values() opens only what changed since last time.
        self._opened: dict[str, str] = {}

    @property
    def max_value_bytes(self) -> int:
        return self.settings.secrets_max_value_bytes

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _open(self, name: str, version: int, token: str) -> str:
        try:
            return self.keyring.open(token, aad(name, version))
        except SealError as exc:
            log.error("secret '%s' version %s does not open: %s", name, version, exc)
            raise SecretUnreadable(f"Secret '{name}' cannot be decrypted: {exc}") from None

    def _audit(
        self,
        name: str,
        action: str,
        actor: str | None,
        version: int | None = None,
        workflow_id: str | None = None,
        detail: str | None = None,
    ) -> Json:
        return {
            "name": name,
            "at": self.clock.now_ms(),
            "actor": actor,
            "action": action,
            "version": version,
            "workflow_id": workflow_id,
            "detail": _detail(detail),
        }

    # -- permissions ------------------------------------------------------------------

    async def _has_access(
        self, conn: AsyncConnection, principal: Principal, name: str, access: str
    ) -> bool:
        if principal.has(_ROLE_ACCESS[access]):
            return True
        granted = await repo.granted_access(conn, _subjects(principal), [name])
        return access in granted.get(name, set())

    async def _require_access(
        self, conn: AsyncConnection, principal: Principal, name: str, *access: str
    ) -> None:
        for item in access:
            if await self._has_access(conn, principal, name, item):
                return
        permission = _ROLE_ACCESS[access[0]]
        roles = "ADMIN" if permission is Permission.SECRET_READ else "ADMIN or METADATA_MANAGER"
        wanted = " or ".join(access)
        raise Forbidden(
            f"'{principal.name}' may not do this to secret '{name}': it needs role {roles}, "
            f"or a {wanted} grant on the secret"
        )

    async def _run_as(self, run_as: str | None) -> Principal | None:
        """The principal a workflow runs as; None when it has none or its application no
        longer exists."""
        if not self.auth.enabled:
            return ANONYMOUS_ADMIN
        if not run_as or run_as == ANONYMOUS:
            # Started by nobody known (an event handler, or while auth was off): with
            # authentication on, such a workflow may not read or write secrets.
            return None
        return await self.auth.principal_for_application(run_as)

    # -- writes -----------------------------------------------------------------------

    async def _apply(
        self,
        conn: AsyncConnection,
        name: str,
        row: Json | None,
        value: str,
        *,
        actor: str,
        action: str,
        workflow_id: str | None = None,
        detail: str | None = None,
    ) -> int:
        """Store `value` as the secret's next version, inside the caller's transaction."""
        now = self.clock.now_ms()
        if row is None:
            version = await repo.highest_audited_version(conn, name) + 1
        else:
            version = int(row["version"]) + 1
        sealed = self.keyring.seal(value, aad(name, version))
        changes = {
            "value": sealed,
            "version": version,
            "updated_at": now,
            "updated_by": actor,
            "last_rotated_time": now,
            "last_rotated_by": actor,
        }
        if row is None:
            await repo.insert_secret(
                conn, {"name": name, "created_at": now, "created_by": actor, **changes}
            )
        else:
            await repo.update_secret(conn, name, changes)
        await repo.insert_version(
            conn,
            {
                "name": name,
                "version": version,
                "value": sealed,
                "created_at": now,
                "written_by": actor,
                "workflow_id": workflow_id,
            },
        )
        await repo.prune_versions(conn, name, version - self.settings.secrets_versions_kept + 1)
        await repo.add_audit(conn, [self._audit(name, action, actor, version, workflow_id, detail)])
        return version

    @staticmethod
    def _check_precondition(name: str, row: Json | None, expect: int | None) -> None:
        if expect is None:
            return
        current = int(row["version"]) if row is not None else None
        if expect == CREATE_ONLY and current is not None:
            raise PreconditionFailed(f"Secret '{name}' already exists (version {current})")
        if expect == MUST_EXIST and current is None:
            raise PreconditionFailed(f"Secret '{name}' does not exist")
        if expect > 0 and current != expect:
            state = "does not exist" if current is None else f"is at version {current}"
            raise PreconditionFailed(f"Secret '{name}' {state}, not version {expect}")

    async def _write(
        self,
        name: str,
        value: str,
        *,
        actor: str,
        principal: Principal | None,
        action_for: Callable[[Json | None], str],
        workflow_id: str | None = None,
        expect: int | None = None,
        detail: str | None = None,
    ) -> int:
        """One upsert transaction: lock, check precondition and access, apply. Two creators
        of one new name race on its primary key; the loser retries and becomes an update."""
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                async with self.db.write() as conn:
                    row = await repo.get_secret(conn, name, lock=self.db.ops)
                    if principal is not None:
                        needed = ("UPDATE",) if row is not None else ("CREATE", "UPDATE")
                        await self._require_access(conn, principal, name, *needed)
                    self._check_precondition(name, row, expect)
                    version = await self._apply(
                        conn,
                        name,
                        row,
                        value,
                        actor=actor,
                        action=action_for(row),
                        workflow_id=workflow_id,
                        detail=detail,
                    )
            except sa.exc.IntegrityError:
                if attempt + 1 == _WRITE_ATTEMPTS:
                    raise Conflict(
                        f"Secret '{name}' is being written concurrently; retry"
                    ) from None
                continue
            self._changed()
            return version
        raise AssertionError("unreachable")

    async def put(
        self, name: str, value: str, caller: Principal, expect: int | None = None
    ) -> Written:
        check_name(name)
        check_value(value, self.max_value_bytes)
        version = await self._write(
            name,
            value,
            actor=caller.name,
            principal=caller,
            action_for=lambda row: Action.CREATE if row is None else Action.UPDATE,
            expect=expect,
        )
        return Written(name, version)

    async def rollback(
        self,
        name: str,
        caller: Principal,
        version: int | None = None,
        expect: int | None = None,
    ) -> Written:
        async with self.db.write() as conn:
            row = await repo.get_secret(conn, name, lock=self.db.ops)
            if row is None:
                raise not_found(name)
            await self._require_access(conn, caller, name, "UPDATE")
            self._check_precondition(name, row, expect)
            current = int(row["version"])
            if version is None:
                target = await repo.previous_version(conn, name, current)
                if target is None:
                    raise Conflict(f"Secret '{name}' has no previous version to roll back to")
            else:
                if version == current:
                    raise Conflict(f"Version {version} of secret '{name}' is the current one")
                target = await repo.get_version(conn, name, version)
                if target is None:
                    kept = [v["version"] for v in await repo.list_versions(conn, name)]
                    raise NotFound(
                        f"Secret '{name}' has no version {version}; versions kept: "
                        + ", ".join(str(v) for v in sorted(kept))
                    )
            restored = int(target["version"])
            value = self._open(name, restored, target["value"])
            new_version = await self._apply(
                conn,
                name,
                row,
                value,
                actor=caller.name,
                action=Action.ROLLBACK,
                detail=f"restored version {restored}",
            )
        self._changed()
        return Written(name, new_version, restored)

    async def delete(self, name: str, caller: Principal) -> None:
        async with self.db.write() as conn:
            row = await repo.get_secret(conn, name, lock=self.db.ops)
            if row is None:
                raise not_found(name)
            await self._require_access(conn, caller, name, "DELETE")
            await repo.delete_secret(conn, name)
            await repo.add_audit(
                conn, [self._audit(name, Action.DELETE, caller.name, int(row["version"]))]
            )
        self._changed()

    # -- reads ------------------------------------------------------------------------

    async def get_value(self, name: str, caller: Principal) -> tuple[str, int]:
        """The current value and its version; the read is audited."""
        # Through AuthService, as the route's check: the same answer for any grants hook.
        await self.auth.authorize(caller, Permission.SECRET_READ, name)
        async with self.db.read() as conn:
            row = await repo.get_secret(conn, name)
            if row is None:
                raise not_found(name)
        version = int(row["version"])
        value = self._open(name, version, row["value"])
        async with self.db.write() as conn:
            await repo.add_audit(conn, [self._audit(name, Action.READ, caller.name, version)])
        return value, version

    async def exists(self, name: str) -> bool:
        async with self.db.read() as conn:
            return await repo.exists(conn, name)

    async def list_all(self) -> list[str]:
        async with self.db.read() as conn:
            return await repo.list_names(conn)

    async def list_accessible(self, caller: Principal, access: Iterable[str] = ()) -> list[str]:
        """Names the caller holds every one of `access` on (default READ), by role or grant."""
        wanted = list(dict.fromkeys(a.strip().upper() for a in access if a.strip())) or ["READ"]
        unknown = [a for a in wanted if a not in ACCESS_TYPES]
        if unknown:
            raise BadRequest(
                f"Unknown access type '{unknown[0]}'. Supported: {', '.join(ACCESS_TYPES)}"
            )
        async with self.db.read() as conn:
            names = await repo.list_names(conn)
            if all(caller.has(_ROLE_ACCESS[a]) for a in wanted):
                return names
            granted = await repo.granted_access(conn, _subjects(caller), names)
        return [
            n
            for n in names
            if all(caller.has(_ROLE_ACCESS[a]) or a in granted.get(n, set()) for a in wanted)
        ]

    async def list_extended(self, caller: Principal) -> list[Json]:
        names = await self.list_accessible(caller)
        async with self.db.read() as conn:
            tags = await repo.tags_by_name(conn)
        return [{"name": n, "tags": tags.get(n, [])} for n in names]

    async def metadata(self, name: str) -> Json:
        async with self.db.read() as conn:
            row = await repo.get_secret(conn, name)
            if row is None:
                raise not_found(name)
            tags = await repo.get_tags(conn, name)
        return {
            "name": name,
            "version": row["version"],
            "createTime": row["created_at"],
            "updateTime": row["updated_at"],
            "createdBy": row["created_by"],
            "updatedBy": row["updated_by"],
            "lastRotatedTime": row["last_rotated_time"],
            "lastRotatedBy": row["last_rotated_by"],
            "tags": tags,
        }

    async def versions(self, name: str) -> list[Json]:
        async with self.db.read() as conn:
            row = await repo.get_secret(conn, name)
            if row is None:
                raise not_found(name)
            rows = await repo.list_versions(conn, name)
        return [
            {
                "version": r["version"],
                "createdAt": r["created_at"],
                "writtenBy": r["written_by"],
                "workflowId": r["workflow_id"],
                "current": r["version"] == row["version"],
            }
            for r in rows
        ]

    async def audit(self, name: str, limit: int = 100) -> list[Json]:
        """Newest first. Kept after the secret is deleted; 404 only for a name never seen."""
        if not 1 <= limit <= AUDIT_LIMIT_MAX:
            raise BadRequest(f"limit must be between 1 and {AUDIT_LIMIT_MAX}")
        async with self.db.read() as conn:
            rows = await repo.list_audit(conn, name, limit)
            if not rows and not await repo.exists(conn, name):
                raise not_found(name)
        return [
            {
                "id": r["id"],
                "name": r["name"],
                "time": r["at"],
                "actor": r["actor"],
                "action": r["action"],
                "version": r["version"],
                "workflowId": r["workflow_id"],
                "detail": r["detail"],
            }
            for r in rows
        ]

    # -- tags -------------------------------------------------------------------------

    async def get_tags(self, name: str) -> list[Json]:
        async with self.db.read() as conn:
            if not await repo.exists(conn, name):
                raise not_found(name)
            return await repo.get_tags(conn, name)

    async def put_tags(self, name: str, tags: list[tuple[str, str]]) -> None:
        async with self.db.write() as conn:
            if not await repo.exists(conn, name):
                raise not_found(name)
            # The last of several entries with one key wins, as a map would.
            await repo.upsert_tags(conn, self.db.ops, name, dict(tags).items())

    async def delete_tags(self, name: str, tags: list[tuple[str, str]]) -> None:
        async with self.db.write() as conn:
            if not await repo.exists(conn, name):
                raise not_found(name)
            await repo.delete_tags(conn, name, tags)

    # -- grants -----------------------------------------------------------------------

    async def _grant_subject(
        self, subject: SubjectRef, *, must_exist: bool = True
    ) -> tuple[str, str]:
        """Orkes names an application as a USER `app:<id>`; Baton also takes APP/APPLICATION
        with the bare id, and ROLE with a role name (everyone holding it)."""
        kind = subject.type.strip().upper()
        if kind in ("USER", "APP", "APPLICATION"):
            app_id = subject.id.removeprefix("app:")
            if must_exist and await self.auth.principal_for_application(app_id) is None:
                raise NotFound(f"Application '{app_id}' not found")
            return "APP", app_id
        if kind == "ROLE":
            try:
                return "ROLE", Role(subject.id.strip().upper()).value
            except ValueError:
                supported = ", ".join(r.value for r in Role)
                raise BadRequest(
                    f"Unknown role '{subject.id}'. Supported roles: {supported}"
                ) from None
        raise BadRequest(
            f"Unsupported subject type '{subject.type}': use USER (app:<applicationId>), "
            "APP or ROLE"
        )

    @staticmethod
    def _grant_target(target_type: str, target_id: str) -> str:
        if target_type.strip().upper() not in ("SECRET_NAME", "SECRET"):
            raise BadRequest(
                f"Unsupported target type '{target_type}': Baton keeps grants on secrets "
                "only (SECRET_NAME)"
            )
        check_name(target_id)
        return target_id

    @staticmethod
    def _access_list(access: list[str]) -> list[str]:
        out = list(dict.fromkeys(a.strip().upper() for a in access))
        for item in out:
            if item not in ACCESS_TYPES:
                raise BadRequest(
                    f"Unknown access type '{item}'. Supported: {', '.join(ACCESS_TYPES)}"
                )
        return out

    async def grant(self, request: AuthorizationRequest) -> None:
        name = self._grant_target(request.target.type, request.target.id)
        kind, who = await self._grant_subject(request.subject)
        access = self._access_list(request.access)
        async with self.db.write() as conn:
            await repo.add_grants(conn, self.db.ops, name, kind, who, access)

    async def revoke(self, request: AuthorizationRequest) -> None:
        name = self._grant_target(request.target.type, request.target.id)
        # The application may be gone already; its grants can still be removed.
        kind, who = await self._grant_subject(request.subject, must_exist=False)
        access = self._access_list(request.access)
        async with self.db.write() as conn:
            await repo.remove_grants(conn, name, kind, who, access)

    async def grants_on(self, target_type: str, target_id: str) -> dict[str, list[Json]]:
        """Orkes' GET /api/auth/authorization/{type}/{id}: access type -> subjects."""
        name = self._grant_target(target_type, target_id)
        async with self.db.read() as conn:
            rows = await repo.grants_on(conn, name)
        out: dict[str, list[Json]] = {}
        for r in rows:
            subject = (
                {"type": "USER", "id": f"app:{r['subject_id']}"}
                if r["subject_type"] == "APP"
                else {"type": r["subject_type"], "id": r["subject_id"]}
            )
            out.setdefault(r["access"], []).append(subject)
        return out

    # -- the engine's side ------------------------------------------------------------

    async def resolve_for_workflow(
        self, names: Iterable[str], run_as: str | None, workflow_id: str
    ) -> dict[str, str]:
        """Current values of the named secrets that exist and that `run_as` (an application
        id; any starter when authentication is off) may
        READ. Missing or unreadable names are absent from the result. One audit row per
        existing name, all in one transaction."""
        wanted = list(dict.fromkeys(names))
        principal = await self._run_as(run_as)
        async with self.db.read() as conn:
            rows = await repo.get_secrets(conn, wanted)
            readable: set[str] = set()
            if principal is not None and rows:
                if principal.has(Permission.SECRET_READ):
                    readable = {r["name"] for r in rows}
                else:
                    granted = await repo.granted_access(
                        conn, _subjects(principal), [r["name"] for r in rows]
                    )
                    readable = {n for n, access in granted.items() if "READ" in access}
        values: dict[str, str] = {}
        audit: list[Json] = []
        for row in sorted(rows, key=lambda r: str(r["name"])):
            name, version = str(row["name"]), int(row["version"])
            if name not in readable:
                who = "its application no longer exists" if principal is None else "no READ"
                audit.append(
                    self._audit(name, Action.RESOLVE_DENIED, run_as, version, workflow_id, who)
                )
                continue
            try:
                values[name] = self.keyring.open(row["value"], aad(name, version))
            except SealError as exc:
                log.error("secret '%s' version %s does not open: %s", name, version, exc)
                audit.append(
                    self._audit(name, Action.RESOLVE_FAILED, run_as, version, workflow_id, str(exc))
                )
                continue
            audit.append(self._audit(name, Action.RESOLVE, run_as, version, workflow_id))
        if audit:
            async with self.db.write() as conn:
                await repo.add_audit(conn, audit)
        return values

    async def write_from_workflow(
        self, name: str, value: str, run_as: str | None, workflow_id: str
    ) -> int:
        """UPDATE_SECRET: upsert as a new version, written by `workflow:<id>`. `run_as` needs
        SECRET_WRITE (ADMIN, METADATA_MANAGER) or an UPDATE grant (CREATE also for a new
        name). Raises BadRequest / Forbidden, whose messages never hold the value."""
        check_name(name)
        check_value(value, self.max_value_bytes)
        principal = await self._run_as(run_as)
        if principal is None:
            raise Forbidden(
                f"Secret '{name}' cannot be updated: application '{run_as}', which started the "
                "workflow, no longer exists"
            )
        return await self._write(
            name,
            value,
            actor=f"workflow:{workflow_id}",
            principal=principal,
            action_for=lambda _row: Action.WRITE,
            workflow_id=workflow_id,
            detail=f"run as {run_as or ANONYMOUS}",
        )

    async def record_failed_rotation(
        self, name: str | None, run_as: str | None, workflow_id: str, reason: str
    ) -> None:
        """An UPDATE_SECRET that did not write (no permission, bad input): audited under the
        secret's name ('' when the task named none). `reason` must not hold the value."""
        async with self.db.write() as conn:
            await repo.add_audit(
                conn,
                [
                    self._audit(
                        name or "", Action.ROTATION_FAILED, run_as, None, workflow_id, reason
                    )
                ],
            )

    async def known_values(self) -> list[str]:
        """Every current and kept value, opened, for value-based masking."""
        async with self.db.read() as conn:
            rows = await repo.all_sealed_versions(conn)
        opened: dict[str, str] = {}
        for row in rows:
            token = row["value"]
            value = self._opened.get(token)
            if value is None:
                try:
                    value = self.keyring.open(token, aad(row["name"], row["version"]))
                except SealError as exc:
                    log.error(
                        "secret '%s' version %s does not open: %s", row["name"], row["version"], exc
                    )
                    continue
            opened[token] = value
        # Only what is still stored stays cached: a deleted value leaves memory too.
        self._opened = opened
        return list(dict.fromkeys(opened.values()))

    # -- operators --------------------------------------------------------------------

    async def rekey(self) -> tuple[int, int]:
        """Re-seal under the current key every stored value sealed under another key, and the
        `_secrets` subtrees of workflow and task documents. Returns (values, documents)."""
        async with self.db.read() as conn:
            # Versions live and die with their secret, so the names cover them.
            names = await repo.list_names(conn)
        values = 0
        for name in names:
            values += await self._rekey_secret(name)
        documents = await self._rekey_documents()
        if values or documents:
            self._changed()
        return values, documents

    def _reseal(self, name: str, version: int, token: str) -> str:
        try:
            plain = self.keyring.open(token, aad(name, version))
        except SealError as exc:
            raise SealError(f"secret '{name}' version {version}: {exc}") from None
        return self.keyring.seal(plain, aad(name, version))

    async def _rekey_secret(self, name: str) -> int:
        count = 0
        async with self.db.write() as conn:
            row = await repo.get_secret(conn, name, lock=self.db.ops)
            _, versions = await repo.sealed_of(conn, name)
            for item in versions:
                if self.keyring.needs_rekey(item["value"]):
                    version = int(item["version"])
                    token = self._reseal(name, version, item["value"])
                    await repo.set_version_value(conn, name, version, token)
                    count += 1
            if row is not None and self.keyring.needs_rekey(row["value"]):
                version = int(row["version"])
                token = self._reseal(name, version, row["value"])
                await repo.set_sealed_value(conn, name, version, token)
                count += 1
        return count

    async def _rekey_documents(self) -> int:
        from app.secrets import sealing
        from app.store.tables import tasks, workflows

        pattern = re.compile(r'"\$sealed"\s*:\s*"([^"]+)"')
        count = 0
        for table, key in ((workflows, workflows.c.workflow_id), (tasks, tasks.c.task_id)):
            after = ""
            # Bounded: each round moves `after` forward past at least one row.
            for _ in range(1_000_000):
                async with self.db.read() as conn:
                    batch = (
                        await conn.execute(
                            sa.select(key, table.c.doc)
                            .where(key > after, table.c.doc.like('%"$sealed"%'))
                            .order_by(key)
                            .limit(200)
                        )
                    ).all()
                if not batch:
                    break
                after = batch[-1][0]
                for row_id, doc in batch:
                    tokens = pattern.findall(doc)
                    if not any(self.keyring.needs_rekey(t) for t in tokens):
                        continue
                    resealed = sealing.reseal_text(doc, self.keyring)
                    if resealed is None:
                        continue
                    async with self.db.write() as conn:
                        # Only over the text we read: a concurrent engine write wins.
                        result = await conn.execute(
                            sa.update(table)
                            .where(key == row_id, table.c.doc == doc)
                            .values(doc=resealed)
                        )
                    count += result.rowcount
        return count
