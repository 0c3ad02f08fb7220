"""The NPU probe runs out of process and `npu-conformance info` reports what it found."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conformance.platform import probe as probe_module
from conformance.platform.backends import resolve_backend
from conformance.platform.probe import NpuProbe, cann_version


def make_probe(usable):
    return NpuProbe("2.13.0", "2.13.0" if usable else None, None, usable, usable, 8 if usable else 0,
                    "Ascend910B" if usable else None, None if usable else "torch-npu is not installed")


def test_auto_picks_npu_only_when_a_device_is_usable():
    assert resolve_backend("auto", make_probe(True))[0] == "npu"
    name, reason = resolve_backend("auto", make_probe(False))
    assert name == "emulated" and "torch-npu is not installed" in reason
    assert resolve_backend("npu", make_probe(False))[0] == "npu"
    with pytest.raises(ValueError, match="--backend must be one of"):
        resolve_backend("gpu")


def test_cann_version_is_read_from_the_toolkit_home(tmp_path):
    (tmp_path / "version.cfg").write_text("# comment\nversion=8.3.RC1\n")
    assert cann_version({"ASCEND_TOOLKIT_HOME": str(tmp_path)}) == "8.3.RC1"
    assert cann_version({}) is None


def test_a_crashing_torch_npu_import_is_reported_not_fatal(monkeypatch, tmp_path):
    # A fake torch_npu whose import exits the process, as old releases did without CANN.
    (tmp_path / "torch_npu.py").write_text("import sys\nsys.exit('no libascendcl.so')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(probe_module, "_dist_version", lambda name: "2.13.0")
    probe_module.probe_npu.cache_clear()
    try:
        result = probe_module.probe_npu()
    finally:
        probe_module.probe_npu.cache_clear()
    assert not result.usable and not result.torch_npu_importable
    assert "SystemExit" in result.error and "libascendcl" in result.error


def test_info_command_prints_versions_and_the_auto_choice():
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "info"], capture_output=True, text=True,
                         check=True).stdout
    assert "torch " in out and "NPU usable" in out
    assert "backend 'auto' picks" in out and ("emulated" in out or "npu" in out)
