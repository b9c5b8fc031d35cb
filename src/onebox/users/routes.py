"""Sign-in, sign-out, the current user, passwords and the caller's own API keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.core.errors import APIError, NotFoundError
from onebox.deps import CurrentPrincipal, SessionDep, StateDep, require_csrf
from onebox.state import AppState
from onebox.users.auth import CSRF_COOKIE, SESSION_COOKIE, Principal
from onebox.users.keys import KeyLimits, KeyService
from onebox.users.repository import UserRepository
from onebox.users.schemas import (
    AuthConfigOut,
    KeyCreate,
    KeyCreated,
    KeyOut,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    SignupIn,
    UserOut,
)
from onebox.users.service import (
    SESSION_LIFETIME,
    AccountService,
    AuthenticationFailedError,
    NewSession,
)

router = APIRouter(prefix="/api", tags=["accounts"])


def client_ip(request: Request) -> str:
    state: AppState = request.app.state.onebox
    return state.limits.client_ip(request.client.host if request.client else None, request.headers)


def _set_session_cookies(
    request: Request, response: Response, new: NewSession, signed: str
) -> None:
    secure = request.url.scheme == "https"
    lifetime = int(SESSION_LIFETIME.total_seconds())
    response.set_cookie(
        SESSION_COOKIE, signed, max_age=lifetime, httponly=True, secure=secure,
        samesite="lax", path="/",
    )  # fmt: skip
    # Readable by the page's script, which echoes it in X-CSRF-Token on unsafe requests.
    response.set_cookie(
        CSRF_COOKIE, new.csrf_token, max_age=lifetime, httponly=False, secure=secure,
        samesite="lax", path="/",
    )  # fmt: skip


async def auth_config_out(request: Request, state: AppState) -> AuthConfigOut:
    """What the sign-in screen needs to know (also part of ``GET /api/bootstrap``)."""
    peer = request.client.host if request.client else None
    anonymous = await state.auth.anonymous_allowed(peer, request.headers)
    return AuthConfigOut(signup_open=state.settings.signup_open, anonymous=anonymous)


async def me_out(principal: Principal, session: AsyncSession) -> MeOut:
    """Who is calling (also part of ``GET /api/bootstrap``)."""
    user = await UserRepository(session).get(principal.user_id)
    return MeOut(
        mode=principal.method,
        user=UserOut.model_validate(user) if user and user.is_account else None,
        csrf_token=principal.csrf_token,
    )


@router.get("/auth/config", response_model=AuthConfigOut)
async def auth_config(request: Request, state: StateDep) -> AuthConfigOut:
    return await auth_config_out(request, state)


@router.post("/auth/login", response_model=MeOut)
async def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep, state: StateDep
) -> MeOut:
    service = AccountService(session)
    ip = client_ip(request)
    await state.limits.check_login(ip)
    try:
        user = await service.authenticate(body.email, body.password, source=ip)
    except AuthenticationFailedError:
        await service.audit("login", actor_email=body.email, outcome="denied", ip=ip)
        await session.commit()  # the failure count and the audit entry must stick
        raise
    new = await service.start_session(user, user_agent=request.headers.get("user-agent", ""), ip=ip)
    await service.audit("login", actor=user, ip=ip)
    await session.commit()
    _set_session_cookies(request, response, new, state.auth.sign(new.token))
    return MeOut(mode="session", user=UserOut.model_validate(user), csrf_token=new.csrf_token)


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, session: SessionDep, state: StateDep) -> Response:
    """Ends the session if there is one, and always clears the cookies (a stale cookie
    must not keep a browser half signed in). A live session must send its CSRF token like
    any other write, so another site cannot sign the user out."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    signed_in = await state.auth.from_session_cookie(cookie) if cookie else None
    if signed_in is not None:
        require_csrf(request, signed_in)
    token = state.auth.unsign(cookie)
    if token:
        await AccountService(session).end_session(token)
        await session.commit()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/auth/signup", response_model=MeOut, status_code=201)
async def signup(
    body: SignupIn, request: Request, response: Response, session: SessionDep, state: StateDep
) -> MeOut:
    if not state.settings.signup_open:
        raise APIError(403, "Sign-up is closed; ask an administrator", "permission_error")
    await state.limits.check_login(client_ip(request))
    service = AccountService(session)
    user = await service.create_account(body.email, body.password, display_name=body.display_name)
    new = await service.start_session(user, user_agent=request.headers.get("user-agent", ""),
                                      ip=client_ip(request))  # fmt: skip
    await service.audit("signup", actor=user, ip=client_ip(request))
    await session.commit()
    state.auth.forget_accounts_state()
    _set_session_cookies(request, response, new, state.auth.sign(new.token))
    return MeOut(mode="session", user=UserOut.model_validate(user), csrf_token=new.csrf_token)


@router.get("/auth/me", response_model=MeOut)
async def me(principal: CurrentPrincipal, session: SessionDep) -> MeOut:
    return await me_out(principal, session)


@router.post("/auth/password", status_code=204)
async def change_password(
    body: PasswordChangeIn, request: Request, principal: CurrentPrincipal, session: SessionDep,
    state: StateDep,
) -> Response:  # fmt: skip
    if principal.method != "session":
        raise APIError(403, "Change your password from a signed-in browser", "permission_error")
    await state.limits.check_login(client_ip(request))
    service = AccountService(session)
    user = await service.change_password(
        principal.user_id, body.current_password, body.new_password,
        keep_session=principal.session_token,
    )  # fmt: skip
    await service.audit("password_change", actor=user, ip=client_ip(request))
    await session.commit()
    return Response(status_code=204)


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(principal: CurrentPrincipal, session: SessionDep) -> list[KeyOut]:
    keys = await UserRepository(session).list_keys(user_id=principal.user_id)
    return [KeyOut.model_validate(key) for key in keys]


@router.post("/keys", response_model=KeyCreated, status_code=201)
async def create_key(
    body: KeyCreate, request: Request, principal: CurrentPrincipal, session: SessionDep
) -> KeyCreated:
    user = await UserRepository(session).get(principal.user_id)
    if user is None:
        raise NotFoundError("User not found")
    key, secret = await KeyService(session).create(
        user,
        name=body.name,
        kind=body.kind,
        expires_at=body.expires_at,
        limits=KeyLimits(
            requests_per_minute=body.requests_per_minute,
            tokens_per_minute=body.tokens_per_minute,
            tokens_per_day=body.tokens_per_day,
            tokens_per_month=body.tokens_per_month,
            concurrent_streams=body.concurrent_streams,
        ),
        models=body.models,
        collections=body.collections,
        allowed_origins=body.allowed_origins,
    )
    await AccountService(session).audit(
        "key_create", actor=user, target=key.prefix, ip=client_ip(request)
    )
    await session.commit()
    return KeyCreated(key=KeyOut.model_validate(key), secret=secret)


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(
    key_id: str, request: Request, principal: CurrentPrincipal, session: SessionDep,
    state: StateDep,
) -> Response:  # fmt: skip
    key = await KeyService(session).revoke(key_id, user_id=principal.user_id)
    await AccountService(session).audit(
        "key_revoke", actor_email=principal.email, target=key.prefix, ip=client_ip(request)
    )
    await session.commit()
    state.auth.forget_key(key.key_hash)
    return Response(status_code=204)
