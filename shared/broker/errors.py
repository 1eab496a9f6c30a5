"""Exceptions raised by the local Kafka tooling."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """Base class, so the CLI and the test fixture can report every local-broker failure alike."""


class BrokerToolError(BrokerError):
    """A host tool (``java``, ``mvn``) is missing or failed; the message says what to install or fix."""


class BrokerStartError(BrokerError):
    """The broker could not be started or did not answer in time; the message carries the log tail."""
