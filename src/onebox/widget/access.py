"""Who is asking through the widget: a widget key (public, ``obw_…``), used from one of the
origins it allows, by an anonymous visitor of that site.

The Origin check is what keeps other sites' pages from using a key; it is made on every
request. The Onebox origin itself (the demo page, the preview) is always allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from onebox.core.errors import APIError
from onebox.users.auth import Authenticator, InvalidCredentialsError, KeySnapshot, Principal
from onebox.users.keys import WIDGET_PREFIX
from onebox.widget.schemas import VISITOR_PATTERN

VISITOR_HEADER = "x-onebox-visitor"
_VISITOR = re.compile(VISITOR_PATTERN)


@dataclass(frozen=True)
class RequestOrigin:
    """What the browser said about where the request comes from."""

    origin: str  # the Origin header, "" when absent
    host: str  # the Host header: this server as the browser addressed it
    fetch_site: str = ""  # Sec-Fetch-Site

    def effective(self) -> str:
        """The calling page's origin. Browsers leave Origin off same-origin GETs; their
        Sec-Fetch-Site says so instead."""
        if self.origin and self.origin != "null":
            return self.origin.strip().lower().rstrip("/")
        if self.fetch_site == "same-origin":
            return "self"
        return ""

    def allowed_by(self, key: KeySnapshot) -> bool:
        origin = self.effective()
        if not origin:
            return False
        if origin == "self" or _netloc(origin) == self.host.lower():
            return True
        return origin in (key.allowed_origins or ())


def _netloc(origin: str) -> str:
    try:
        return urlsplit(origin).netloc
    except ValueError:
        return ""


def refused(message: str, code: str, status: int = 403) -> APIError:
    error_type = "authentication_error" if status == 401 else "permission_error"
    return APIError(status, message, error_type, code=code)


async def widget_principal(
    auth: Authenticator, authorization: str, origin: RequestOrigin
) -> tuple[Principal, KeySnapshot]:
    """The key's owner acting through the widget key; raises 401/403 otherwise."""
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential.startswith(WIDGET_PREFIX):
        raise refused(
            "Send the widget key (obw_…) as 'Authorization: Bearer <key>'",
            "invalid_widget_key",
            401,
        )
    try:
        principal = await auth.from_bearer(credential)
    except InvalidCredentialsError as exc:
        raise refused(f"{exc}", "invalid_widget_key", 401) from exc
    key = principal.key
    if key is None or key.kind != "widget":
        raise refused("This is not a widget key", "invalid_widget_key", 401)
    if not origin.allowed_by(key):
        raise refused("This chat is not enabled for this website", "origin_not_allowed")
    return principal, key


def visitor_id(value: str | None) -> str:
    if not value or not _VISITOR.fullmatch(value):
        raise APIError(
            400,
            "Send the visitor id (8 to 64 letters, digits, '-' or '_') in X-Onebox-Visitor",
            "invalid_request_error",
            param=VISITOR_HEADER,
            code="invalid_visitor",
        )
    return value
