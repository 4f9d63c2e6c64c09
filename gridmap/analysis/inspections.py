"""When places on the inspection registry are due, and how many inspections a period owed.

Pure functions on pandas frames; dates are ``datetime.date`` values (or anything pandas reads as
a date). The rule, everywhere the same:

* a place's next inspection is due ``inspection_interval_days`` after its last inspection, or
  after its registration when it was never inspected;
* on the due date itself a place is *due*, the day after it is *overdue*;
* from ``due_within_days`` days before the due date it is *due* (a warning); earlier it is *ok*.
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

STATUSES = ("ok", "due", "overdue")

_PLACE_COLUMNS = ("inspection_interval_days", "registered_on")


def _require(frame: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {', '.join(missing)}")


def _days(values) -> np.ndarray:
    """Dates as whole days since the epoch (int64), NaT as the smallest int64."""
    stamps = pd.to_datetime(pd.Series(values), errors="raise")
    out = stamps.to_numpy(dtype="datetime64[D]").astype("int64")
    return out


def _day(value) -> int:
    return int(np.datetime64(pd.Timestamp(value).date(), "D").astype("int64"))


def next_due_dates(places: pd.DataFrame) -> pd.Series:
    """The date each place's next inspection is due.

    Parameters
    ----------
    places : pandas.DataFrame
        Columns ``inspection_interval_days`` (positive int), ``registered_on`` (date) and,
        optionally, ``last_inspected`` (date, missing when never inspected).

    Returns
    -------
    pandas.Series
        ``datetime.date`` values, indexed like ``places``.

    Examples
    --------
    >>> frame = pd.DataFrame({"inspection_interval_days": [30],
    ...                       "registered_on": [date(2023, 1, 1)], "last_inspected": [date(2023, 3, 1)]})
    >>> next_due_dates(frame).iloc[0]
    datetime.date(2023, 3, 31)
    """
    _require(places, _PLACE_COLUMNS, "places")
    if len(places) == 0:
        return pd.Series([], index=places.index, dtype=object)
    interval = places["inspection_interval_days"].to_numpy(dtype="int64")
    if (interval <= 0).any():
        raise ValueError("inspection_interval_days must be positive")
    base = pd.to_datetime(places["registered_on"])
    if "last_inspected" in places.columns:
        last = pd.to_datetime(places["last_inspected"])
        base = last.where(last.notna(), base)
    if base.isna().any():
        raise ValueError("every place needs registered_on or last_inspected")
    due = base + pd.to_timedelta(interval, unit="D")
    return pd.Series([d.date() for d in due], index=places.index, dtype=object)


def inspection_status(places: pd.DataFrame, today: date, due_within_days: int = 7) -> pd.DataFrame:
    """Each place's next due date, the days until it (negative when overdue) and its status.

    Parameters
    ----------
    places : pandas.DataFrame
        As for :func:`next_due_dates`; other columns are kept.
    today : datetime.date
        The day the status is for.
    due_within_days : int, default 7
        How many days before the due date a place starts to show as *due*.

    Returns
    -------
    pandas.DataFrame
        A copy of ``places`` with ``next_due`` (date), ``days_until_due`` (int) and ``status``
        (``"ok"``, ``"due"`` or ``"overdue"``).

    Examples
    --------
    >>> frame = pd.DataFrame({"inspection_interval_days": [30, 30, 30],
    ...                       "registered_on": [date(2023, 1, 1)] * 3,
    ...                       "last_inspected": [date(2023, 3, 1), date(2023, 3, 2), date(2023, 4, 1)]})
    >>> list(inspection_status(frame, date(2023, 4, 1))["status"])
    ['overdue', 'due', 'ok']
    """
    if due_within_days < 0:
        raise ValueError("due_within_days must not be negative")
    out = places.copy()
    out["next_due"] = next_due_dates(places)
    if len(out) == 0:
        out["days_until_due"] = pd.Series([], dtype="int64")
        out["status"] = pd.Series([], dtype=object)
        return out
    days_until = _days(out["next_due"]) - _day(today)
    out["days_until_due"] = days_until
    out["status"] = np.select([days_until < 0, days_until <= due_within_days], ["overdue", "due"], "ok")
    return out


def count_by_status(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Places per ``by`` value and status, with a total: columns ``ok``, ``due``, ``overdue``, ``total``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`inspection_status` with the column ``by`` (e.g. ``town_code``).
    by : str
        Column to group by.

    Returns
    -------
    pandas.DataFrame
        Indexed by the ``by`` values, sorted; integer counts.
    """
    _require(frame, (by, "status"), "frame")
    table = pd.crosstab(frame[by], frame["status"]).reindex(columns=list(STATUSES), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.columns.name = None
    return table.sort_index().astype("int64")


def inspections_due_in_period(places: pd.DataFrame, inspections: pd.DataFrame, start: date,
                              end: date) -> pd.DataFrame:
    """Which places owed an inspection in ``[start, end]`` and which of them got one.

    A place owes one when its next due date, judged from the inspections before ``start``, falls
    on or before ``end`` (so a place already overdue at ``start`` owes one too). Places registered
    after ``end`` owe nothing.

    Parameters
    ----------
    places : pandas.DataFrame
        Columns ``id``, ``inspection_interval_days``, ``registered_on``.
    inspections : pandas.DataFrame
        Columns ``place_id``, ``inspected_on``.
    start, end : datetime.date
        The period, both days included.

    Returns
    -------
    pandas.DataFrame
        ``places`` with ``inspections`` (count in the period), ``owed`` (bool) and
        ``done`` (owed and inspected in the period).

    Examples
    --------
    >>> places = pd.DataFrame({"id": [1, 2], "inspection_interval_days": [30, 30],
    ...                        "registered_on": [date(2023, 1, 1)] * 2})
    >>> done = pd.DataFrame({"place_id": [1, 1], "inspected_on": [date(2023, 4, 20), date(2023, 5, 10)]})
    >>> result = inspections_due_in_period(places, done, date(2023, 5, 1), date(2023, 5, 31))
    >>> result[["owed", "done"]].values.tolist()
    [[True, True], [True, False]]
    """
    if start > end:
        raise ValueError("start must not be after end")
    _require(places, ("id",) + _PLACE_COLUMNS, "places")
    _require(inspections, ("place_id", "inspected_on"), "inspections")
    out = places[pd.to_datetime(places["registered_on"]).dt.date <= end].copy()
    dates = pd.to_datetime(inspections["inspected_on"]).dt.date
    before = inspections[dates < start]
    within = inspections[(dates >= start) & (dates <= end)]
    last_before = pd.to_datetime(before["inspected_on"]).groupby(before["place_id"]).max()
    # reindex, not map: mapping through an empty Series loses the datetime dtype.
    out["last_inspected"] = last_before.reindex(out["id"]).to_numpy()
    due = next_due_dates(out)
    out["inspections"] = within.groupby("place_id").size().reindex(out["id"], fill_value=0).to_numpy(dtype="int64")
    out["owed"] = [d <= end for d in due] if len(out) else pd.Series([], dtype=bool)
    out["done"] = out["owed"] & (out["inspections"] > 0)
    return out.drop(columns=["last_inspected"])
