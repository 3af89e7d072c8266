# pragma version 0.4.3
# pragma evm-version cancun
"""
@title Public delay windows of the national reserve's large spends
@notice Before the custody signers sign a spend at or above the signed policy's veto threshold,
        the treasury's publisher announces it here: the canonical announcement (proposal, chain,
        vault, asset, amount, destination, transaction hash; format in
        custody/authority/delay.py) is logged in full and the block time is kept, once per
        announcement. The signers read this contract themselves and sign only after the policy's
        window has passed, by this chain's block time, with no valid veto.
        Anyone may submit a veto: an officer's signed VETO statement, logged in full. The
        contract cannot check an officer's signature (the roster lives off chain); the signers
        verify each one against the roster they replay, and ignore what does not verify. So a
        veto needs no one's permission, not even the treasury's: an institution whose server is
        down or compromised can still stop a spend.
"""

ANNOUNCEMENT_MAX_BYTES: constant(uint256) = 2048
VETO_MAX_BYTES: constant(uint256) = 8192

event SpendAnnounced:
    announcement_digest: indexed(bytes32)
    proposal: indexed(bytes32)
    announcement: Bytes[ANNOUNCEMENT_MAX_BYTES]
    announced_at: uint256

event VetoSubmitted:
    proposal: indexed(bytes32)
    submitter: indexed(address)
    veto: Bytes[VETO_MAX_BYTES]

event PublisherChanged:
    previous_publisher: indexed(address)
    new_publisher: indexed(address)

publisher: public(address)
announced_at: public(HashMap[bytes32, uint256])
veto_count: public(HashMap[bytes32, uint256])


@deploy
def __init__(publisher: address):
    assert publisher != empty(address), "window: the publisher is the zero address"
    self.publisher = publisher


@external
def announce(proposal: bytes32, announcement: Bytes[ANNOUNCEMENT_MAX_BYTES]) -> uint256:
    """
    @notice Announce a spend; only the publisher may, once per announcement.
    @return The block time the window starts from.
    """
    assert msg.sender == self.publisher, "window: only the publisher may announce"
    assert len(announcement) > 0, "window: the announcement is empty"
    digest: bytes32 = sha256(announcement)
    assert self.announced_at[digest] == 0, "window: this spend is already announced"
    self.announced_at[digest] = block.timestamp
    log SpendAnnounced(
        announcement_digest=digest,
        proposal=proposal,
        announcement=announcement,
        announced_at=block.timestamp,
    )
    return block.timestamp


@external
def veto(proposal: bytes32, veto: Bytes[VETO_MAX_BYTES]):
    """
    @notice Submit an officer's signed veto of `proposal`; anyone may submit it.
    """
    assert len(veto) > 0, "window: the veto is empty"
    self.veto_count[proposal] += 1
    log VetoSubmitted(proposal=proposal, submitter=msg.sender, veto=veto)


@external
def set_publisher(new_publisher: address):
    """
    @notice Hand announcing to another address; only the publisher may.
    """
    assert msg.sender == self.publisher, "window: only the publisher may name a new publisher"
    assert new_publisher != empty(address), "window: the publisher is the zero address"
    log PublisherChanged(previous_publisher=self.publisher, new_publisher=new_publisher)
    self.publisher = new_publisher
