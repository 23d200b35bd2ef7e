from node_harness import NODE_ADDRESS, NODE_KEY

from runner.identity import NodeKey, SiweChallenge, siwe_message

VECTOR_SIGNATURE = (
    "0x390786f1c4840ec337aef7c4a6d15bba128cc308e2f32f4528e2f8dd44f61f354a68a45bcf7d39eb724346a02f6eefebd8"
    "a39e20ebf68435bfe026ed47b1e5171b"
)


def test_published_siwe_vector_gives_exact_address_and_signature():
    key = NodeKey.from_hex(NODE_KEY)
    challenge = SiweChallenge(
        nonce="abc123",
        domain="example.com",
        uri="https://example.com",
        version="1",
        chain_id="1",
        issued_at="2024-05-01T00:00:00Z",
    )
    message = siwe_message(challenge, key.address)

    assert key.address == NODE_ADDRESS
    assert message == (
        "example.com wants you to sign in with your Ethereum account:\n"
        "0xfdbb6caf01414300c16ea14859fec7736d95355f\n\n"
        "URI: https://example.com\nVersion: 1\nChain ID: 1\nNonce: abc123\nIssued At: 2024-05-01T00:00:00Z"
    )
    assert key.personal_sign(message) == VECTOR_SIGNATURE


def test_key_accepts_0x_prefix_and_never_shows_the_secret():
    key = NodeKey.from_hex("0x" + NODE_KEY.upper())
    assert key.address == NODE_ADDRESS
    assert NODE_KEY not in repr(key).lower()
    assert NODE_KEY not in str(key).lower()
