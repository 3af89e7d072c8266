"""The batch path's directly written payload hash equals the canonical one on any input.

Idempotency across the two paths rests on it: a key recorded by ``record_entry`` must replay on
``record_batch`` and the other way round, so the two hashes may never differ by one byte.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from treasury.ledger import Leg, Side, payload_hash
from treasury.ledger.batch import _HashMemo, _payload_hash
from treasury.ledger.models import EntryKind

codes = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9:._/-]{0,20}\n?\Z")
"""What ``validate_code`` accepts (its ``$`` also lets one trailing newline through)."""

legs = st.lists(
    st.builds(
        Leg,
        codes,
        st.sampled_from(list(Side)),
        st.integers(min_value=1, max_value=10**78 - 1),
    ),
    min_size=2,
    max_size=8,
).map(tuple)


@given(
    kind=st.sampled_from([EntryKind.POSTED, EntryKind.PENDING]),
    legs=legs,
    description=st.text(max_size=40),
)
def test_the_batch_hash_equals_the_canonical_payload_hash(
    kind: EntryKind, legs: tuple[Leg, ...], description: str
) -> None:
    """Any legs (any order, any amount up to 78 digits) and any text hash alike on both paths."""
    assert _payload_hash(kind, legs, description, _HashMemo()) == payload_hash(
        kind, legs, description
    )


def test_the_batch_hash_escapes_quotes_controls_and_non_ascii_like_canonical_json() -> None:
    """Characters JSON must escape, and ones it must not, give the canonical hash."""
    tricky = (Leg.debit("a:b", 1), Leg.credit("a:b\n", 1))
    for description in ['"', "\\", "\x00\x1f\x7f", "Ω ünïcødé ✓", "\u2028\u2029", "𝄞"]:
        assert _payload_hash(EntryKind.POSTED, tricky, description, _HashMemo()) == payload_hash(
            EntryKind.POSTED, tricky, description
        )


@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from([EntryKind.POSTED, EntryKind.PENDING]),
            legs,
            st.sampled_from(["", "deposit", "Ω"]) | st.text(max_size=10),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_one_memo_shared_by_a_batch_gives_every_entry_its_canonical_hash(
    entries: list[tuple[EntryKind, tuple[Leg, ...], str]],
) -> None:
    """The memo keeps pieces across a batch's entries (repeated descriptions, kinds, accounts
    and sides): no piece of one entry leaks into another's hash."""
    memo = _HashMemo()
    for kind, entry_legs, description in entries:
        assert _payload_hash(kind, entry_legs, description, memo) == payload_hash(
            kind, entry_legs, description
        )
