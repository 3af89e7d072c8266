"""Custody of the national reserve: cosigner keys, multisig vaults, and the devnets they run on.

No seed is ever stored whole: it is Shamir-split among share holders and recombined in memory only
for the signing call that needs it.
"""
