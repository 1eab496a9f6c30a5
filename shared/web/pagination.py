"""One page shape for every list route, so that clients page through every list the same way."""

from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_PAGE_SIZE = 500
# Bounded so an absurd offset is a 422, not an integer the database driver cannot bind (a 500).
MAX_OFFSET = 1_000_000_000


class PageParams(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


def page_params(
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE, description="How many items per page."),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="How many items to skip."),
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page, or null on the last page.")

    @classmethod
    def of(cls, items: list[T], total: int, params: PageParams) -> Page[T]:
        following = params.offset + len(items)
        return cls(
            items=items,
            total=total,
            limit=params.limit,
            offset=params.offset,
            next_offset=following if following < total else None,
        )
