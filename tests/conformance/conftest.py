"""Chromium for the authorization-server scenarios (the same fixture as the e2e tests)."""

from tests.e2e.conftest import chromium

__all__ = ["chromium"]
