"""Where it runs: the kernel backends (real NPU or the emulator), the subprocess NPU probe, and the
devices workers are pinned to."""
