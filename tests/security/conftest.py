"""Isolation probes share the integration suite's fixtures and daemon."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from sbxd_fixtures import *  # noqa: E402,F401,F403  (pytest fixtures)
from sbxd_fixtures import register_markers  # noqa: E402


def pytest_configure(config):
    register_markers(config)
