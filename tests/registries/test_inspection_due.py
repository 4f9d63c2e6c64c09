"""Due and overdue at the interval's boundaries, counts by status, and what a period owed."""
from datetime import date

import pandas as pd
import pytest

from gridmap.analysis.inspections import count_by_status, inspection_status, inspections_due_in_period


def frame(last, interval=30, registered=date(2023, 1, 1)):
    return pd.DataFrame({"inspection_interval_days": [interval], "registered_on": [registered],
                         "last_inspected": [last]})


@pytest.mark.parametrize("today, expected_status, expected_days", [
    (date(2023, 3, 31), "due", 0),        # the due date itself: due, not yet overdue
    (date(2023, 4, 1), "overdue", -1),    # the day after: overdue
    (date(2023, 3, 24), "due", 7),        # exactly the warning window before
    (date(2023, 3, 23), "ok", 8),         # one day earlier: fine
    (date(2023, 3, 2), "ok", 29),         # the day after the inspection
])
def test_status_at_interval_boundaries(today, expected_status, expected_days):
    result = inspection_status(frame(date(2023, 3, 1)), today, due_within_days=7)
    assert result["next_due"].iloc[0] == date(2023, 3, 31)
    assert result["days_until_due"].iloc[0] == expected_days
    assert result["status"].iloc[0] == expected_status


def test_never_inspected_counts_from_registration_and_window_zero():
    never = frame(pd.NaT, interval=10, registered=date(2023, 5, 1))
    assert inspection_status(never, date(2023, 5, 11), 0)["status"].iloc[0] == "due"
    assert inspection_status(never, date(2023, 5, 10), 0)["status"].iloc[0] == "ok"
    assert inspection_status(never, date(2023, 5, 12), 0)["status"].iloc[0] == "overdue"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="positive"):
        inspection_status(frame(date(2023, 3, 1), interval=0), date(2023, 4, 1))
    with pytest.raises(ValueError, match="registered_on"):
        inspection_status(pd.DataFrame({"inspection_interval_days": [5]}), date(2023, 4, 1))
    with pytest.raises(ValueError, match="due_within_days"):
        inspection_status(frame(date(2023, 3, 1)), date(2023, 4, 1), due_within_days=-1)


def test_empty_frame_and_counts_by_status():
    empty = inspection_status(frame(date(2023, 3, 1)).iloc[0:0], date(2023, 4, 1))
    assert list(empty.columns)[-3:] == ["next_due", "days_until_due", "status"] and len(empty) == 0
    places = pd.DataFrame({"inspection_interval_days": [30, 30, 30, 90],
                           "registered_on": [date(2023, 1, 1)] * 4,
                           "last_inspected": [date(2023, 3, 1), date(2023, 3, 28), date(2023, 1, 1), date(2023, 3, 1)],
                           "town_code": ["T2", "T1", "T1", "T2"]})
    table = count_by_status(inspection_status(places, date(2023, 4, 1)), "town_code")
    assert table.to_dict("index") == {"T1": {"ok": 1, "due": 0, "overdue": 1, "total": 2},
                                      "T2": {"ok": 1, "due": 0, "overdue": 1, "total": 2}}


def test_period_owes_by_the_due_date_judged_at_its_start():
    places = pd.DataFrame({"id": [1, 2, 3, 4, 5], "inspection_interval_days": [30, 32, 31, 180, 30],
                           "registered_on": [date(2023, 1, 1)] * 4 + [date(2023, 6, 1)]})
    inspections = pd.DataFrame({"place_id": [1, 1, 2, 3, 4],
                                "inspected_on": [date(2023, 4, 20), date(2023, 5, 10), date(2023, 4, 30),
                                                 date(2023, 4, 30), date(2023, 5, 15)]})
    result = inspections_due_in_period(places, inspections, date(2023, 5, 1), date(2023, 5, 31)).set_index("id")
    # 1: due 05-20, inspected 05-10 -> owed and done.
    assert result.loc[1, ["owed", "done", "inspections"]].tolist() == [True, True, 1]
    # 2: due 06-01, the day after the period -> owes nothing.
    assert result.loc[2, ["owed", "done", "inspections"]].tolist() == [False, False, 0]
    # 3: due 05-31, the period's last day -> owed, not done.
    assert result.loc[3, ["owed", "done", "inspections"]].tolist() == [True, False, 0]
    # 4: due at the end of June, inspected anyway -> counted as an inspection, not as owed.
    assert result.loc[4, ["owed", "done", "inspections"]].tolist() == [False, False, 1]
    # 5: registered after the period.
    assert 5 not in result.index
    with pytest.raises(ValueError, match="start"):
        inspections_due_in_period(places, inspections, date(2023, 6, 1), date(2023, 5, 31))
