"""scatterpa: an engine that writes its paged cache with npu_scatter_pa_kv_cache (a test fixture)."""
