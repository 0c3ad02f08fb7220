"""The conformance properties: what users run on hardware (`pytest --pyargs conformance.suite`)."""
