"""Administration: users, every API key, usage over time, and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from onebox.core.errors import BadRequestError, NotFoundError
from onebox.core.inputs import PageOffset
from onebox.deps import AdminPrincipal, SessionDep, StateDep
from onebox.users.keys import KeyService
from onebox.users.repository import UserRepository
from onebox.users.routes import client_ip
from onebox.users.schemas import (
    AdminKeyOut,
    AdminUserCreate,
    AdminUserUpdate,
    AuditOut,
    KeyOut,
    UserOut,
)
from onebox.users.service import AccountService

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/users", response_model=list[UserOut])
async def list_users(
    admin: AdminPrincipal, session: SessionDep,
    limit: int = Query(default=100, ge=1, le=500), offset: PageOffset = 0,
) -> list[UserOut]:  # fmt: skip
    users = await UserRepository(session).list_users(limit=limit, offset=offset)
    return [UserOut.model_validate(user) for user in users]


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(
    body: AdminUserCreate, request: Request, admin: AdminPrincipal, session: SessionDep,
    state: StateDep,
) -> UserOut:  # fmt: skip
    service = AccountService(session)
    user = await service.create_account(
        body.email, body.password, is_admin=body.role == "admin", display_name=body.display_name
    )
    await service.audit(
        "admin_user_create", actor_email=admin.email, target=user.email, ip=client_ip(request),
        details=f"role={user.role}",
    )  # fmt: skip
    await session.commit()
    state.auth.forget_accounts_state()
    return UserOut.model_validate(user)


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(
    user_id: str, body: AdminUserUpdate, request: Request, admin: AdminPrincipal,
    session: SessionDep, state: StateDep,
) -> UserOut:  # fmt: skip
    repository = UserRepository(session)
    user = await repository.get(user_id)
    if user is None or not user.is_account:
        raise NotFoundError(f"User {user_id!r} not found")
    if user.id == admin.user_id and (body.is_active is False or body.role == "user"):
        raise BadRequestError("You cannot disable or demote yourself")
    changes = []
    if body.role is not None:
        user.is_admin = body.role == "admin"
        changes.append(f"role={body.role}")
    if body.is_active is not None:
        user.is_active = body.is_active
        changes.append(f"active={body.is_active}")
        if not body.is_active:
            await repository.delete_sessions_of(user.id)
    await AccountService(session).audit(
        "admin_user_update", actor_email=admin.email, target=user.email,
        ip=client_ip(request), details=", ".join(changes),
    )  # fmt: skip
    await session.commit()
    state.auth.forget_user(user.id)
    return UserOut.model_validate(user)


@router.get("/keys", response_model=list[AdminKeyOut])
async def list_all_keys(admin: AdminPrincipal, session: SessionDep) -> list[AdminKeyOut]:
    repository = UserRepository(session)
    keys = await repository.list_keys(user_id=None)
    emails: dict[str, str] = {}
    out = []
    for key in keys:
        if key.user_id not in emails:
            owner = await repository.get(key.user_id)
            emails[key.user_id] = owner.email if owner else ""
        out.append(
            AdminKeyOut(**KeyOut.model_validate(key).model_dump(), user_email=emails[key.user_id])
        )
    return out


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_any_key(
    key_id: str, request: Request, admin: AdminPrincipal, session: SessionDep, state: StateDep
) -> Response:
    key = await KeyService(session).revoke(key_id, user_id=None)
    await AccountService(session).audit(
        "admin_key_revoke", actor_email=admin.email, target=key.prefix, ip=client_ip(request)
    )
    await session.commit()
    state.auth.forget_key(key.key_hash)
    return Response(status_code=204)


@router.get("/audit", response_model=list[AuditOut])
async def audit(
    admin: AdminPrincipal, session: SessionDep, limit: int = Query(default=100, ge=1, le=1000)
) -> list[AuditOut]:
    events = await UserRepository(session).recent_audit(limit=limit)
    return [AuditOut.model_validate(event) for event in events]
