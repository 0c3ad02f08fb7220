"""Fixtures shared by the harness's own tests."""

from __future__ import annotations

import dataclasses

import pytest

from conformance.judge.settings import RunSettings, configure, settings


@pytest.fixture
def run_settings():
    """Change the run's process-wide settings for one test: `run_settings(mutation=..., failures_dir=tmp_path)`
    (any RunSettings fields; returns the new settings, as `configure` does). Every field is put back as it
    was before the test afterwards, whether the test passed or failed."""
    before = settings()
    yield configure
    configure(**{f.name: getattr(before, f.name) for f in dataclasses.fields(RunSettings)})
