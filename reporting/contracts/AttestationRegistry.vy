# pragma version 0.4.3
# pragma evm-version cancun
"""
@title Attestation registry of the national reserve
@notice Each proof-of-reserves attestation's digest is published here by the treasury's publisher
        (a designated key, later the treasury's Safe). Publications are numbered from 1 and
        chained: each event names the digest published just before it, so an auditor sees any
        gap or fork in the chain of attestations. A digest can be published only once.
        The publisher also announces statements (a key rotation, a change of the vault set;
        format in reporting/SPEC-announcements.md) by their digest: each announcement records
        the sequence of the next attestation, so an auditor sees that a statement was public
        before the first attestation it governs.
"""

event Published:
    digest: indexed(bytes32)
    previous: bytes32
    sequence: indexed(uint256)
    publisher: indexed(address)

event Announced:
    digest: indexed(bytes32)
    before_sequence: uint256
    publisher: indexed(address)

event PublisherChanged:
    previous_publisher: indexed(address)
    new_publisher: indexed(address)

publisher: public(address)
latest: public(bytes32)
count: public(uint256)
digest_at: public(HashMap[uint256, bytes32])
sequence_of: public(HashMap[bytes32, uint256])
announced_before: public(HashMap[bytes32, uint256])


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
def announce(statement_digest: bytes32) -> uint256:
    """
    @notice Record that the statement with this digest was announced before attestation
            `count + 1` was published; only the publisher may call, once per digest.
    @return The sequence of the next attestation (1 if none is published yet): the statement
            was public before that attestation, so it can govern it and every later one.
    """
    assert msg.sender == self.publisher, "registry: only the publisher may announce"
    assert statement_digest != empty(bytes32), "registry: the digest is zero"
    assert self.announced_before[statement_digest] == 0, "registry: this statement is already announced"
    before_sequence: uint256 = self.count + 1
    self.announced_before[statement_digest] = before_sequence
    log Announced(digest=statement_digest, before_sequence=before_sequence, publisher=msg.sender)
    return before_sequence


@external
def set_publisher(new_publisher: address):
    """
    @notice Hand publishing to another address (e.g. the treasury's Safe); only the publisher may.
    """
    assert msg.sender == self.publisher, "registry: only the publisher may name a new publisher"
    assert new_publisher != empty(address), "registry: the publisher is the zero address"
    log PublisherChanged(previous_publisher=self.publisher, new_publisher=new_publisher)
    self.publisher = new_publisher
