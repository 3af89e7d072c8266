"""An officer's key-file signature posted by the console, paired with their roster key.

An officer without a passkey (a newcomer in the demo, or anyone who prefers the CLI's key file)
signs on the proposal page with their key file: the page's script (``console_js/keyfile.js``)
opens the file with the passphrase in the browser and posts only the statement, the 65-byte
signature and the file's public key, never the file or the passphrase. This module turns those
three form fields into a ``SignedStatement`` under the officer's **active** secp256k1 key in the
signed roster. It does not verify the signature: the workflow does that, exactly as for the CLI,
and each signer does it again.
"""

from __future__ import annotations

import json

from custody.authority import (
    OfficerKeyKind,
    OfficerPublicKey,
    RosterState,
    Secp256k1Signature,
    SignedStatement,
)
from custody.authority.errors import AuthorityError
from custody.authority.signature import signature_from_json
from treasury.authority.passkeys import PasskeyInputError, statement_from_text
from treasury.officers import Officer
from treasury.workflow_exceptions import NotAuthorisedError

__all__ = ["KeyFileInputError", "active_key_files", "keyfile_signed"]

PUBLIC_KEY_HEX_CHARS = 66
"""A compressed secp256k1 public key (33 bytes) in hex."""


class KeyFileInputError(PasskeyInputError):
    """The key-file signature the console posted is malformed (a ``WorkflowInputError``: 422)."""


def active_key_files(state: RosterState | None, officer: Officer) -> list[OfficerPublicKey]:
    """The officer's secp256k1 keys the signed roster holds active (what a key file may sign with)."""
    if state is None:
        return []
    roster_officer = state.officers.get(str(officer.id))
    if roster_officer is None or not roster_officer.active:
        return []
    return [k for k in roster_officer.keys.values() if k.kind is OfficerKeyKind.SECP256K1]


def keyfile_signed(
    state: RosterState,
    officer: Officer,
    statement_text: str,
    key_signature: str,
    key_public: str,
) -> SignedStatement:
    """The posted statement with the key file's signature, under the officer's roster key whose
    public key is ``key_public``; refused if the officer has no such active key."""
    statement = statement_from_text(statement_text)
    try:
        parsed = json.loads(key_signature)
    except json.JSONDecodeError:
        raise KeyFileInputError(
            'The key_signature must be JSON: {"kind": "secp256k1", "signature": "<130 hex>"}.'
        ) from None
    try:
        signature = signature_from_json(parsed)
    except AuthorityError as exc:
        raise KeyFileInputError(f"The key_signature is malformed: {exc}") from None
    if not isinstance(signature, Secp256k1Signature):
        raise KeyFileInputError("The key_signature must be a secp256k1 key-file signature.")
    if len(key_public) != PUBLIC_KEY_HEX_CHARS:
        raise KeyFileInputError(
            "The key_public must be the key file's 33-byte public key in hex (66 characters)."
        )
    try:
        public = bytes.fromhex(key_public)
    except ValueError:
        raise KeyFileInputError("The key_public is not hexadecimal.") from None
    for key in active_key_files(state, officer):
        if key.public == public:
            return SignedStatement(statement, key.key_id, signature)
    raise NotAuthorisedError(
        "The key file you signed with is not an active key of yours in the signed roster; "
        "your institution's admins must sign its public key into the roster first "
        "(treasury roster draft key-rotate)."
    )
