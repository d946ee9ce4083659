"""Rows of the pipeline's DataFrames with their types: pandas types a row's values only as "some
scalar", so a reader names the shape it relies on (its columns are named by strings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar, cast

import pandas as pd

Row = TypeVar("Row")


def rows(frame: pd.DataFrame, shape: type[Row]) -> Iterator[Row]:
    """The frame's rows as itertuples(index=False) gives them, read as `shape`: a NamedTuple
    whose fields name the columns read and their types. Nothing is converted or checked."""
    return cast("Iterator[Row]", frame.itertuples(index=False))


def is_missing(value: object) -> bool:
    """None, or a scalar pandas counts as missing (NaN, NA, NaT); a list or text never is."""
    # pd.isna takes any scalar; the overloads of the stubs name only some types.
    return value is None or (pd.api.types.is_scalar(value)
                             and bool(pd.isna(value)))  # type: ignore[call-overload]  # any scalar


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as to_dict("records") gives them: dicts by column name."""
    return cast("list[dict[str, Any]]", frame.to_dict("records"))
