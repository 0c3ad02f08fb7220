"""What is under test, beside the cases: the layer (conformance.adapters.layer) and the runner that builds
its Contexts (conformance.adapters.runner), each the project's own by default or another code base's,
selected with --layer / --runner (conformance.adapters.loading) and named in every report (identity)."""
