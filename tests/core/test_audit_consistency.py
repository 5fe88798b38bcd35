"""RFC 6962 consistency proofs between audit checkpoints (sans-IO)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.audit import (
    AuditConsistencyInvalid,
    consistency_proof,
    leaf_hash,
    merkle_root,
    verify_consistency,
)


def leaves(n: int, tag: bytes = b"") -> list[bytes]:
    return [leaf_hash(tag + i.to_bytes(4, "big")) for i in range(n)]


# RFC 6962 2.1.3: the proofs of the 7-leaf example tree, by their shape.
def test_proofs_have_the_rfc_6962_example_shapes() -> None:
    d = leaves(7)
    assert len(consistency_proof(3, d)) == 4  # c, d, g, l
    assert len(consistency_proof(4, d)) == 1  # l
    assert len(consistency_proof(6, d)) == 3  # i, j, k


@given(st.integers(1, 70), st.data())
def test_every_prefix_is_proven_consistent_with_the_whole_log(n: int, data: st.DataObject) -> None:
    d = leaves(n)
    m = data.draw(st.integers(0, n))
    verify_consistency(m, merkle_root(d[:m]), n, merkle_root(d), consistency_proof(m, d))


@given(st.integers(2, 70), st.data())
def test_a_rewritten_old_entry_breaks_consistency(n: int, data: st.DataObject) -> None:
    d = leaves(n)
    m = data.draw(st.integers(1, n - 1))
    changed = data.draw(st.integers(0, m - 1))
    rewritten = list(d)
    rewritten[changed] = leaf_hash(b"rewritten")
    with pytest.raises(AuditConsistencyInvalid):
        verify_consistency(
            m, merkle_root(d[:m]), n, merkle_root(rewritten), consistency_proof(m, rewritten)
        )


@given(st.integers(2, 70), st.data())
def test_a_tampered_proof_is_refused(n: int, data: st.DataObject) -> None:
    d = leaves(n)
    m = data.draw(st.integers(1, n - 1))
    proof = consistency_proof(m, d)
    old, new = merkle_root(d[:m]), merkle_root(d)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = leaf_hash(b"x")
        with pytest.raises(AuditConsistencyInvalid):
            verify_consistency(m, old, n, new, bad)
        with pytest.raises(AuditConsistencyInvalid):
            verify_consistency(m, old, n, new, proof[:-1])
    with pytest.raises(AuditConsistencyInvalid):
        verify_consistency(m, old, n, new, [*proof, leaf_hash(b"extra")])


def test_same_size_checkpoints_must_have_the_same_root() -> None:
    d = leaves(5)
    verify_consistency(5, merkle_root(d), 5, merkle_root(d), [])
    with pytest.raises(AuditConsistencyInvalid):
        verify_consistency(5, merkle_root(d), 5, merkle_root(leaves(5, b"other")), [])


def test_a_shrunk_log_is_inconsistent() -> None:
    d = leaves(5)
    with pytest.raises(AuditConsistencyInvalid):
        verify_consistency(5, merkle_root(d), 4, merkle_root(d[:4]), [])
