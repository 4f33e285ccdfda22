"""Errors the API answers with, in the OpenAI / vLLM shape.

    >>> from labsupport.serving.errors import ApiError
    >>> ApiError(400, "max_tokens must be at least 1, got 0.", "max_tokens").body()["error"]["type"]
    'BadRequestError'

Every refusal is `{"error": {"message", "type", "param", "code"}}`, as vLLM's `ErrorResponse`:
`type` is the name the OpenAI SDK raises for that status, `code` the status itself.
"""

from __future__ import annotations

ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    413: "BadRequestError",
    415: "BadRequestError",
    499: "ClientClosedRequest",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class ApiError(Exception):
    """A request the server refuses or cannot serve: HTTP status, message, offending field."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

    def body(self) -> dict:
        kind = ERROR_TYPES.get(self.status, "BadRequestError")
        return {
            "error": {
                "message": self.message,
                "type": kind,
                "param": self.param,
                "code": self.status,
            }
        }
