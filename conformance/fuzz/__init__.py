"""Fuzzing sessions (`npu-conformance fuzz`): a controller (controller.py) starts worker processes, one
per NPU, each a pytest session whose loop runs the suite's properties in slices until the budget
(worker.py), sharing an example database (database.py); failures are deduplicated by signature
(signatures.py) and the workers' reports merged (conformance/report/merge.py)."""
