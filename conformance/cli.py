"""The `npu-conformance` command."""

from __future__ import annotations

import argparse
import sys

from conformance.backends import resolve_backend
from conformance.probe import probe_npu


def _cmd_info(args: argparse.Namespace) -> int:
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
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npu-conformance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, NPU availability and which backend 'auto' picks")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
