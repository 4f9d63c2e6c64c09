"""Column cleaning of the importers: text as users typed it, mapped once per distinct value."""
from __future__ import annotations

import numpy as np
import pandas as pd

from gridmap.services.importing import as_text, map_distinct


def test_text_is_stripped_and_empty_or_missing_becomes_none_whatever_the_column_type():
    for values in (["  DSP ", "", None, "SEC", "  "], pd.array(["  DSP ", "", None, "SEC", "  "], dtype="string[pyarrow]")):
        assert as_text(pd.Series(values)).tolist() == ["DSP", None, None, "SEC", None]
    assert as_text(pd.Series([1.0, 2.5, np.nan])).tolist() == ["1", "2.5", None]
    assert as_text(pd.Series([3, 4])).tolist() == ["3", "4"]


def test_map_distinct_calls_once_per_distinct_value_and_keeps_order_index_and_gaps():
    calls = []

    def lookup(value):
        calls.append(value)
        return {"a": "A", "b": None}.get(value, "other")

    series = pd.Series(["a", None, "b", "a", "c", "a", None], index=list("pqrstuv"))
    mapped = map_distinct(series, lookup)

    assert mapped.tolist() == ["A", None, None, "A", "other", "A", None]
    assert mapped.index.tolist() == list("pqrstuv") and mapped.dtype == object
    assert sorted(calls) == ["a", "b", "c"]


def test_map_distinct_of_tuples_and_of_nothing():
    pairs = pd.Series([("FIR", "x"), ("DSP", "y"), ("FIR", "x")])
    assert map_distinct(pairs, lambda key: "/".join(key)).tolist() == ["FIR/x", "DSP/y", "FIR/x"]
    assert map_distinct(pd.Series([], dtype=object), str).tolist() == []
