"""swallower: an engine whose attention falls back to plain PyTorch when the fused kernel fails (a test fixture)."""
