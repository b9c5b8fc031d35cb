"""One error shape for every API response: ``{"error": {"message", "type"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from onebox.core.inputs import NUL_ERROR_TYPE

logger = logging.getLogger(__name__)


class AppError(Exception):
    status_code = 400
    error_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


class APIError(AppError):
    """An error with an explicit status and type (the OpenAI-compatible API uses these)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        error_type: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.status_code = status_code
        self.error_type = error_type


class BadRequestError(AppError):
    pass


class NotFoundError(AppError):
    status_code = 404
    error_type = "not_found_error"


class ConflictError(AppError):
    status_code = 409
    error_type = "conflict_error"


class PayloadTooLargeError(AppError):
    status_code = 413
    error_type = "payload_too_large"


class UnsupportedMediaTypeError(AppError):
    status_code = 415
    error_type = "unsupported_media_type"


class ServiceUnavailableError(AppError):
    status_code = 503
    error_type = "service_unavailable"


_HTTP_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_error",
}


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    # Same keys as OpenAI's errors, so its SDKs and ours read them alike.
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(status_code: int, message: str, error_type: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(message, error_type, **extra), status_code=status_code)


# SQLite waits busy_timeout for the write lock, then gives up with this message.
_LOCK_TIMEOUT_MESSAGES = ("database is locked", "database table is locked")


def database_busy(exc: BaseException) -> APIError | None:
    """A 503 for a database that stayed locked past its wait (an overloaded SQLite), rather
    than a 500: nothing is wrong with the request, and it may simply be sent again."""
    if isinstance(exc, OperationalError) and any(
        text in str(exc.orig) for text in _LOCK_TIMEOUT_MESSAGES
    ):
        return APIError(
            503,
            "The database is busy; try again shortly",
            "service_unavailable",
            code="database_busy",
            headers={"Retry-After": "1"},
        )
    return None


def _describe_validation_error(exc: RequestValidationError) -> tuple[int, str, str | None]:
    errors = exc.errors()
    first = errors[0] if errors else {}
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        return 400, "The request body is not valid JSON (or not valid UTF-8).", None
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = str(first.get("msg", "Invalid request"))
    if param:
        message = f"{param}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    # Well-formed but unusable text is a bad value, as the services' own checks say (400).
    return 400 if kind == NUL_ERROR_TYPE else 422, message, param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        response = error_response(
            exc.status_code, exc.message, exc.error_type, param=exc.param, code=exc.code
        )
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status_code, message, param = _describe_validation_error(exc)
        return error_response(status_code, message, "invalid_request_error", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = _HTTP_ERROR_TYPES.get(exc.status_code, "api_error")
        response = error_response(exc.status_code, str(exc.detail), error_type)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(OperationalError)
    async def _database_error(request: Request, exc: OperationalError) -> JSONResponse:
        busy = database_busy(exc)
        if busy is None:
            return await _unexpected(request, exc)
        logger.warning("Database busy on %s %s: %s", request.method, request.url.path, exc.orig)
        return await _app_error(request, busy)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("Unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error", "api_error")
