"""fourdim: an engine whose attention keeps 4-D caches and takes a config object (a test fixture)."""
