"""Fixtures more than one unit suite needs."""

import pytest

from shared.settings import Settings
from tests.unit.auth_support import settings_with


@pytest.fixture
def settings() -> Settings:
    """Signed with the suites' test secret, so that every token the suites mint verifies against it."""
    return settings_with()
