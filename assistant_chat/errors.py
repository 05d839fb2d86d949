"""Errors that services and selectors raise for bad input or denied access.

Each carries the Pinecone error code and HTTP status the API answers with; the websocket and admin layers
show the same message. Imports nothing from the project.
"""

from __future__ import annotations


class ChatError(Exception):
    """Base class: the caller got something wrong; `message` says what in words they can act on."""

    status = 400
    code = "INVALID_ARGUMENT"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ChatError):
    pass


class Unauthenticated(ChatError):
    status = 401
    code = "UNAUTHENTICATED"


class PermissionDenied(ChatError):
    status = 403
    code = "PERMISSION_DENIED"


class NotFound(ChatError):
    status = 404
    code = "NOT_FOUND"


class AlreadyExists(ChatError):
    status = 409
    code = "ALREADY_EXISTS"


class FailedPrecondition(ChatError):
    status = 400
    code = "FAILED_PRECONDITION"


class PayloadTooLarge(ChatError):
    status = 413
    code = "INVALID_ARGUMENT"


class RateLimited(ChatError):
    status = 429
    code = "RESOURCE_EXHAUSTED"


class TurnInProgress(ChatError):
    """A conversation already has an answer streaming (the database allows one at a time)."""

    status = 409
    code = "FAILED_PRECONDITION"
