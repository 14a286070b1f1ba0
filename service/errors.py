"""The service's exception hierarchy; the API maps each to one HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500


class NotFoundError(ServiceError):
    """An id in the request names nothing."""

    status_code = 404


class ForbiddenError(ServiceError):
    """The caller is authenticated but its role or grants do not allow this."""

    status_code = 403


class UnauthorizedError(ServiceError):
    """No valid token."""

    status_code = 401


class ConflictError(ServiceError):
    """The request contradicts current state (duplicate name, camera already in a session)."""

    status_code = 409


class InvalidInputError(ServiceError):
    """A request value is well-formed but unacceptable; names the field."""

    status_code = 422

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {message}")
        self.loc = loc
        self.message = message


class RateLimitedError(ServiceError):
    """Too many failed logins."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnavailableError(ServiceError):
    """A backing service (database, Redis) did not answer."""

    status_code = 503


class IngestError(ServiceError):
    """A worker message could not be stored."""
