"""Ids are ULIDs: 26 Crockford base-32 characters, time-sortable, derived ones stable."""

from runtime.ids import _ALPHABET, derived_id, new_id


def test_derived_ids_are_stable_across_releases() -> None:
    # Values from the first implementation: a redelivered event must find the run it made.
    assert derived_id(0, "a") == "0000000000GVVY8DZTMPKZSRAX"
    assert derived_id(1_767_225_600_000, "evt-1/shop/f") == derived_id(1_767_225_600_000, "evt-1/shop/f")
    assert derived_id(1, "a") != derived_id(0, "a") and derived_id(0, "b") != derived_id(0, "a")


def test_new_ids_are_unique_sortable_base32() -> None:
    ids = [new_id(ms) for ms in range(1_767_225_600_000, 1_767_225_600_000 + 500)]
    assert all(len(i) == 26 and set(i) <= set(_ALPHABET) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    same_ms = {new_id(5) for _ in range(10_000)}
    assert len(same_ms) == 10_000  # 80 random bits each
