"""A consumer's stored position moves in one statement when it stands where the batch begins, and not otherwise."""

from __future__ import annotations

import pytest

from shared.messaging.positions import advance_position, load_positions, save_position
from shared.store.database import Database


async def stored(database: Database) -> dict[tuple[str, int], int]:
    async with database.read() as conn:
        return await load_positions(conn, "c")


async def test_a_position_moves_only_from_where_it_stands(database: Database) -> None:
    async with database.transaction() as conn:
        assert not await advance_position(conn, "c", "t", 0, 0, 5), "nothing stored yet: the caller saves it"
        await save_position(conn, "c", "t", 0, 5)
    async with database.transaction() as conn:
        assert not await advance_position(conn, "c", "t", 0, 3, 9), "another replica moved it: left alone"
        assert not await advance_position(conn, "c", "t", 1, 5, 9), "another partition"
    assert await stored(database) == {("t", 0): 5}
    async with database.transaction() as conn:
        assert await advance_position(conn, "c", "t", 0, 5, 9)
    assert await stored(database) == {("t", 0): 9}


async def test_a_move_rolls_back_with_its_batch(database: Database) -> None:
    async with database.transaction() as conn:
        await save_position(conn, "c", "t", 0, 5)
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            assert await advance_position(conn, "c", "t", 0, 5, 9)
            raise RuntimeError("a record failed: the batch is retried")
    assert await stored(database) == {("t", 0): 5}
