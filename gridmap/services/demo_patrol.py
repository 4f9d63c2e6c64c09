"""Load the demo county's synthetic patrol tracks (geodata/baofeng/tracks.csv.gz, made by
gridmap.demo.patrol): each track cleaned like an upload (county outline, speed, repeated times),
then all of them written in one bulk insert and one COPY of their fixes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from gridmap.analysis.tracks import transformer
from gridmap.errors import ValidationError
from gridmap.services.patrol import PatrolSettings, clean_tracks, county_outline, store_tracks

TRACKS_FILE = "tracks.csv.gz"


def _lengths_m(fixes: pd.DataFrame, metric_crs: str) -> pd.Series:
    """Length of each track (sum of its legs in the metric CRS), indexed by track_id."""
    x, y = transformer("EPSG:4326", metric_crs).transform(fixes["lon"].to_numpy(), fixes["lat"].to_numpy())
    same = fixes["track_id"].to_numpy()[1:] == fixes["track_id"].to_numpy()[:-1]
    legs = np.where(same, np.hypot(np.diff(x), np.diff(y)), 0.0)
    return pd.Series(np.r_[0.0, legs], index=fixes.index).groupby(fixes["track_id"].to_numpy()).sum()


def load_demo_tracks(session: Session, directory: Path, settings: PatrolSettings | None = None) -> int:
    """Insert the demo tracks into the (emptied) patrol tables; returns how many tracks were stored.

    Runs in the caller's transaction. A missing file is an error, like the other demo files.
    """
    settings = settings or PatrolSettings()
    path = Path(directory) / TRACKS_FILE
    if not path.exists():
        raise ValidationError(f"demo file missing: {path}; run `gridmap demo build` first", "path")
    raw = pd.read_csv(path, dtype={"track_id": str, "officer": str, "zone_code": str})
    raw["time"] = pd.to_datetime(raw["time"], utc=True, format="ISO8601")
    kept, counts = clean_tracks(raw[["track_id", "time", "lon", "lat"]], county_outline(session), settings)
    counts = counts.loc[counts["kept"] >= 2]
    if counts.empty:
        return 0
    lengths = _lengths_m(kept, settings.metric_crs)
    about = raw.drop_duplicates("track_id").set_index("track_id")
    tracks = []
    for track_id, fixes in kept.groupby("track_id", sort=True):
        if track_id not in counts.index:
            continue
        tracks.append({"fixes": fixes, "counts": counts.loc[track_id].to_dict(),
                       "zone_code": about.at[track_id, "zone_code"], "unit_name": about.at[track_id, "officer"],
                       "source_format": "csv", "source_name": f"{TRACKS_FILE}:{track_id}",
                       "length_m": float(lengths[track_id])})
    store_tracks(session, tracks, uploaded_by=None)
    return len(tracks)
