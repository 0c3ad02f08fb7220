"""Conformance harness for the NPU Attention layer: op emulator, strategies, tolerance, reports."""
