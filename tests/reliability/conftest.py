"""Fixtures for the reliability tests: tenants with keys (shared with the security tests)."""

from tests.security.conftest import make_key  # noqa: F401  (a fixture)
