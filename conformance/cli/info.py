"""`npu-conformance info`: what this machine can run."""

from __future__ import annotations

import argparse
import sys

from conformance.cli import exit_codes

# What the subcommand runs is imported in its body, when it runs: building the parser (and --help) must not
# import torch, pytest or the report's renderers.


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "info", help="versions, NPU availability and which backend 'auto' picks",
        description="Print the torch / torch_npu / CANN versions, whether an NPU is usable (probed in a subprocess, "
                    "since a broken `import torch_npu` can kill the process) and which backend `--backend auto` "
                    "picks and why, the emulated CANN versions and the ops the CPU op emulator models.",
        epilog=exit_codes.HELP)
    parser.set_defaults(func=info_command)


def info_command(args: argparse.Namespace) -> int:
    from conformance.emulator import cann
    from conformance.emulator.catalogue import MODELLED_OPS
    from conformance.platform.backends import resolve_backend
    from conformance.platform.probe import probe_npu

    probe = probe_npu()
    backend, reason = resolve_backend("auto", probe)
    rows = [
        ("python", sys.version.split()[0]),
        ("torch", probe.torch_version or "not installed"),
        ("torch_npu", probe.torch_npu_version or "not installed"),
        ("CANN", probe.cann_version or "not found (ASCEND_TOOLKIT_HOME unset or no version file)"),
        ("torch_npu importable", "yes" if probe.torch_npu_importable else "no"),
        ("NPU usable", f"yes, {probe.device_count} device(s): {probe.device_name}" if probe.usable else "no"),
        ("probe error", probe.error or "none"),
        ("backend 'auto' picks", f"{backend} ({reason})"),
    ]
    rows.append(("emulated CANN", f"{cann.DEFAULT_VERSION} by default ({cann.source_of(cann.DEFAULT_VERSION)}); "
                                   f"--cann-version takes {', '.join(cann.EMULATED_VERSIONS)}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("\nops the CPU op emulator models (a layer calling any other fails at that call, naming it):")
    op_width = max(len(name) for name, _ in MODELLED_OPS)
    for name, summary in MODELLED_OPS:
        print(f"  {name:<{op_width}}  {summary}")
    return exit_codes.PASSED
