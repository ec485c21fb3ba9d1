"""Staff for the subscriber admin's tests (a module's own fixture of the same name wins)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import staff_in


@pytest.fixture
def compliance(seeded: None) -> Any:
    return staff_in("Compliance")


@pytest.fixture
def marketer(seeded: None) -> Any:
    return staff_in("Marketers")
