"""nanoport: a small nano-vllm NPU port (a test fixture of npu-attention-conformance, not a real engine)."""
