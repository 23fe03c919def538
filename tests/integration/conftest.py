"""Fixtures of the end-to-end tests of the main job (helpers in e2e_harness.py)."""
import pytest

from e2e_harness import started_clusters

# One local cluster per scenario, all started at once so their Prometheus warm-ups overlap.
# ``boundary`` must be used first: its pending pods go away at scenario t=120 s.
SCENARIOS = ("boundary", "normal", "high", "low", "low_spread")


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    """{scenario: e2e_harness.Cluster}, every cluster ready (cluster.json written, Prometheus has CPU rates)."""
    with started_clusters(SCENARIOS, tmp_path_factory) as running:
        yield running
