"""The attestation registry contract: Vyper source, its build script and the committed artifact."""
