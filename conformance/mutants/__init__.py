"""Planted bugs in the production layer and the kill matrix of the suite against them.

`catalogue.CATALOGUE` lists the mutants (one entry each, with the bug class and public sources). The
bugs themselves live in one module per way of planting them (`Mutant.via`; each module's docstring
says which): layer_bugs, call_bugs, context_bugs, replay_bugs and kernel_bugs, with `ops` for the two
that wrap kernel ops. `runner.run_suite` runs the suite's properties with one planted, `kills` names
how the suite caught it and `report` writes the matrix; `conformance.cli.mutants` is
`npu-conformance mutants`. Attributes load lazily, so the CLI can register its parser without
importing torch or pytest.
"""

__all__ = ["BY_NAME", "CATALOGUE", "Mutant", "get"]


def __getattr__(name):
    if name in __all__:
        from conformance.mutants import catalogue

        return getattr(catalogue, name)
    raise AttributeError(f"module 'conformance.mutants' has no attribute {name!r}")
