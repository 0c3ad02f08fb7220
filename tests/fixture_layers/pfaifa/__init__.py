"""pfaifa: an older Ascend engine's attention on the FIA family's predecessors (a test fixture)."""
