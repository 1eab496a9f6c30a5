"""Domain refusals. Each names the batch's current state and what would be allowed, so an operator can act."""

from __future__ import annotations


class DomainError(Exception):
    """A command or event the rules refuse; the API turns it into a 409 or 422 with this message."""

    status_code = 422

    def __init__(self, message: str, *, current_state: str | None = None, allowed: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.current_state = current_state
        self.allowed = allowed or []


class IllegalTransition(DomainError):
    """The event is not allowed in the batch's current state (409: the state, not the input, is the problem)."""

    status_code = 409


class RuleViolation(DomainError):
    """The input breaks a rule, such as a conservation of quantities (422)."""


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409
