"""Published test vectors for the approval statement format (``statements_v1.json``).

``generate.py`` writes them from fixed statements and a fixed, public test key; the unit tests
check every entry, and another implementation (a console, a hardware signer) can check itself
against the same file.
"""
