"""The state ledger, spend proposals under policy, and the reconciliation scheduler."""
