"""The function tests' `sandbox` fixture: the API description is checked against the real app."""

from tests.functions.conftest import sandbox

__all__ = ["sandbox"]
