"""Bearer-token check for /v1 (``ONEBOX_API_TOKEN``), shared by every /v1 endpoint."""

from __future__ import annotations

import hmac

from onebox.core.errors import APIError
from onebox.core.settings import Settings


def check_bearer(settings: Settings, authorization: str) -> None:
    token = settings.api_token
    if token is None:
        return
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise APIError(
            401,
            "Invalid or missing API key. Send it as 'Authorization: Bearer <key>'.",
            "invalid_request_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
