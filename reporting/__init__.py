"""Proof-of-reserves attestations, the auditors' independent verifier, and published reports."""
