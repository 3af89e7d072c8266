"""The treasury's side of the officers' signed authority: it stores, never vouches.

The roster chain and the approval statements are kept here exactly as signed (``tables``,
``store``); the genesis is built from the treasury's institutions and ceremonies and signed by
each ceremony's share holders (``genesis``); ``verify`` replays the stored chain and compares it
with the treasury's transcripts and audit log. Every verdict on a signature or a rule is custody's
(``custody.authority``), which the signers run again themselves before they sign.
"""
