"""The pytest plugin `npu_conformance` (the pytest11 entry point): the harness's plugin and the report's."""

pytest_plugins = ["conformance.harness.plugin", "conformance.report.pytest_hooks"]
