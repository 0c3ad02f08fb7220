"""What is tested: a Case (plain data that rebuilds its tensors anywhere), the Contexts a runner builds
for it, the hypothesis strategies that draw cases and graph sessions, and the metamorphic transforms.
No judging and no pytest here."""
