"""Integration suite for sbxd's REST API (DESIGN.md section 6).  Fixtures live in
sbxd_fixtures.py so that tests/security shares them (and the same daemon)."""

from sbxd_fixtures import *  # noqa: F401,F403  (pytest fixtures)
from sbxd_fixtures import register_markers


def pytest_configure(config):
    register_markers(config)
