"""Who may call /v1: an API key (widget keys only from their origins), the admin token,
or anyone while Onebox runs in single-user mode on loopback without ONEBOX_API_TOKEN."""

from __future__ import annotations

from onebox.core.errors import APIError
from onebox.ratelimit.client_ip import Headers
from onebox.state import AppState
from onebox.users.auth import InvalidCredentialsError, Principal


def _invalid(message: str) -> APIError:
    return APIError(
        401, message, "invalid_request_error", code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )  # fmt: skip


async def authenticate_v1(
    state: AppState, authorization: str, origin: str, peer: str | None, headers: Headers
) -> Principal:
    if not authorization:
        if state.settings.api_token is None and await state.auth.anonymous_allowed(peer, headers):
            return await state.auth.anonymous(state.local_user_id)
        raise _invalid("Missing API key. Send it as 'Authorization: Bearer <key>'.")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise _invalid("Send the API key as 'Authorization: Bearer <key>'.")
    try:
        principal = await state.auth.from_bearer(credential.strip())
    except InvalidCredentialsError as exc:
        raise _invalid(f"{exc}.") from exc
    key = principal.key
    origin_allowed = bool(origin) and origin.lower().rstrip("/") in (
        (key.allowed_origins or ()) if key else ()
    )
    if key is not None and key.kind == "widget" and not origin_allowed:
        raise APIError(
            403, "This widget key is not allowed from this origin", "permission_error",
            code="origin_not_allowed",
        )  # fmt: skip
    return principal


def check_model_allowed(principal: Principal, model: str) -> None:
    if principal.key is not None and not principal.key.allows_model(model):
        raise APIError(
            403, f"This API key may not use the model {model!r}", "permission_error",
            param="model", code="model_not_allowed",
        )  # fmt: skip
