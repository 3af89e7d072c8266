"""Air-gapped signing: signing requests as files, an offline signer, and merging what it signed.

The coordinator (the treasury) exports what one institution must sign as a file -- the PSBT
(BIP-174, binary and base64) or the Safe's EIP-712 typed data -- together with the officers'
signed statements and the roster chain they must satisfy. On a machine that never touches the
network, the ``custody-sign`` command (``custody.airgap.cli``) reads it, runs custody's own signer
checks (``custody.bitcoin.signer.cosign_psbt``, ``custody.ethereum.signer.cosign_safe_tx``: the
transaction decoded from its bytes, the roster anchored in the recombined seed, the statements),
shows the spend in coin units, takes the holders' share files and writes the signed file. The
coordinator merges it back (``merge``) without ever seeing a share.

The modules, lowest first:

- ``errors``: ``AirgapError`` and its refusals.
- ``typed_data``: a SafeTx as EIP-712 typed data (``eth_signTypedData_v4``'s JSON) and back.
- ``psbt_files``: PSBT bytes in a file (binary or base64) and ``combinepsbt``-style merging.
- ``request``: ``SigningRequest`` and ``SafeSignatureFile``, their JSON files.
- ``offline``: ``review`` and ``sign_request``, the offline signer.
- ``cli``: the ``custody-sign`` console command.

Nothing here imports the treasury, opens a database or a socket; the offline signer needs only
this package, its third-party libraries and the share files.
"""
