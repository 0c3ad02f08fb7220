"""The names every part of the harness shares, defined once (no torch, no pytest: the CLI imports it
to build its parser before anything heavy is loaded)."""

#: Hypothesis profiles, registered by conformance.harness.profiles.
PROFILES = ("dev", "ci", "fuzz", "npu")
#: --backend choices: real kernels, the CPU op emulator, or whichever this machine can run.
BACKENDS = ("auto", "npu", "emulated")
#: The phases a case can be in (the kernel path forward() takes).
PHASES = ("prefill", "decode_eager", "decode_graph")
#: torchair graph modes the runner compiles decode with: GE graphs, or aclgraph capture and replay.
GRAPH_MODES = ("max-autotune", "reduce-overhead")
#: Kernel dtypes by name, in report order.
DTYPE_NAMES = ("float16", "bfloat16", "float32")
#: --shape-space choices: the backend's shapes (the emulator's include its extensions), or only the real kernels'.
SHAPE_SPACES = ("auto", "npu")
