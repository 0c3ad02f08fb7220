"""Is it right: the run's settings, the layer run (conformance.judge.layer_run), the reference's answer
(expected), the tolerance policy and its comparisons, Ascend's benchmark standard, determinism, the
acknowledgement ledger, the compiled decode graphs, planted-bug hooks, and the Outcome that adds them up
(`check.check_case`)."""
