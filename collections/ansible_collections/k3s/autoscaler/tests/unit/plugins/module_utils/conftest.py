# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for module_utils tests: one fixture exporter + one real Prometheus per test module."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from prom_harness import PROMETHEUS_BIN, FixtureExporter, PrometheusProcess  # noqa: E402


@pytest.fixture(scope="module")
def prom_exporter():
    """A FixtureExporter (module scope); tests set its text with ``set_text``."""
    exporter = FixtureExporter()
    yield exporter
    exporter.close()


@pytest.fixture(scope="module")
def prometheus(prom_exporter):
    """The real Prometheus scraping ``prom_exporter`` every 1s (module scope)."""
    if not os.path.exists(PROMETHEUS_BIN):
        pytest.skip("real Prometheus binary %s not installed" % PROMETHEUS_BIN)
    with PrometheusProcess([prom_exporter.target], scrape_interval="1s") as prom:
        yield prom
