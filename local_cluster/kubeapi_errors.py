"""Errors of the emulated Kubernetes API, each renderable as a ``metav1.Status`` object."""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Kubernetes API error: HTTP ``code`` + Status ``reason`` (e.g. 404 NotFound)."""
    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 code: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` body the real apiserver sends for this error."""
        out: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    code, reason = 429, "TooManyRequests"


def not_found(res_plural: str, group: str, name: str) -> NotFound:
    qualified = f"{res_plural}.{group}" if group else res_plural
    return NotFound(f'{qualified} "{name}" not found',
                    details={"name": name, "group": group, "kind": res_plural})


def already_exists(res_plural: str, group: str, name: str) -> AlreadyExists:
    qualified = f"{res_plural}.{group}" if group else res_plural
    return AlreadyExists(f'{qualified} "{name}" already exists',
                         details={"name": name, "group": group, "kind": res_plural})
