"""The templates as checked in, read and parsed once per session for every infra test."""

from __future__ import annotations

import pytest

from tests.infra.templates import MAIN, Templates, read_sources


@pytest.fixture(scope="session")
def sources() -> dict[str, str]:
    found = read_sources()
    assert MAIN in found
    return found


@pytest.fixture(scope="session")
def real(sources: dict[str, str]) -> Templates:
    return Templates.parse(sources)
