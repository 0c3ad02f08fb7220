"""Planted bugs in the production layer and the kill matrix of the suite against them.

`catalogue.CATALOGUE` lists the mutants (one entry each, with the bug class and public sources);
`runner.run_mutant` runs the suite's properties with one planted; `command` is `npu-conformance mutants`.
"""

from conformance.mutants.catalogue import BY_NAME, CATALOGUE, Mutant, get

__all__ = ["BY_NAME", "CATALOGUE", "Mutant", "get"]
