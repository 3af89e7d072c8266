# pragma version 0.4.3
# pragma evm-version cancun
"""
@title Attestation registry of the national reserve
@notice Each proof-of-reserves attestation's digest is published here by the treasury's publisher
        (a designated key, later the treasury's Safe). Publications are numbered from 1 and
        chained: each event names the digest published just before it, so an auditor sees any
        gap or fork in the chain of attestations. A digest can be published only once.
"""

event Published:
    digest: indexed(bytes32)
    previous: bytes32
    sequence: indexed(uint256)
    publisher: indexed(address)

event PublisherChanged:
    previous_publisher: indexed(address)
    new_publisher: indexed(address)

publisher: public(address)
latest: public(bytes32)
count: public(uint256)
digest_at: public(HashMap[uint256, bytes32])
sequence_of: public(HashMap[bytes32, uint256])


@deploy
def __init__(publisher: address):
    assert publisher != empty(address), "registry: the publisher is the zero address"
    self.publisher = publisher


@external
def publish(digest: bytes32) -> uint256:
    """
    @notice Record `digest` as the next attestation; only the publisher may call.
    @return The sequence number given to this publication (1 for the first).
    """
    assert msg.sender == self.publisher, "registry: only the publisher may publish"
    assert digest != empty(bytes32), "registry: the digest is zero"
    assert self.sequence_of[digest] == 0, "registry: this digest is already published"
    sequence: uint256 = self.count + 1
    previous: bytes32 = self.latest
    self.count = sequence
    self.latest = digest
    self.digest_at[sequence] = digest
    self.sequence_of[digest] = sequence
    log Published(digest=digest, previous=previous, sequence=sequence, publisher=msg.sender)
    return sequence


@external
def set_publisher(new_publisher: address):
    """
    @notice Hand publishing to another address (e.g. the treasury's Safe); only the publisher may.
    """
    assert msg.sender == self.publisher, "registry: only the publisher may name a new publisher"
    assert new_publisher != empty(address), "registry: the publisher is the zero address"
    log PublisherChanged(previous_publisher=self.publisher, new_publisher=new_publisher)
    self.publisher = new_publisher
