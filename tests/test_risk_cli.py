"""`gridmap risk` and `gridmap report` as a user runs them: real process, real database, exit statuses."""
import json
import os
import subprocess
import sys

import openpyxl
import pyogrio
import pytest


def run(database, *args):
    env = dict(os.environ, GRIDMAP_DATABASE_URL=database)
    return subprocess.run([sys.executable, "-m", "gridmap.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_risk_writes_every_format(database, tmp_path):
    for fmt in ("csv", "geojson", "gpkg", "xlsx"):
        out = tmp_path / f"risk.{fmt}"
        result = run(database, "risk", "--from", "2026-08-01", "--to", "2026-11-01", "--format", fmt, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert "621 grids" in result.stdout and out.exists()
    assert (tmp_path / "risk.csv").read_text(encoding="utf-8-sig").splitlines()[0].startswith("code,name,")
    collection = json.loads((tmp_path / "risk.geojson").read_text(encoding="utf-8"))
    assert len(collection["features"]) == 621 and collection["period"]["label"] == "2026-08-01 至 2026-10-31"
    assert len(pyogrio.read_dataframe(tmp_path / "risk.gpkg", layer="towns")) == 13
    book = openpyxl.load_workbook(tmp_path / "risk.xlsx")
    assert book["网格风险"].max_row == 622 and book["网格风险"]["A1"].value == "编码"


def test_report_writes_json_and_excel(database, tmp_path):
    result = run(database, "report", "--from", "2026-08-01", "--to", "2026-11-01", "--format", "json",
                 "--out", str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stderr
    body = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert body["sanling"]["by_town"][-1]["n"] == 323
    result = run(database, "report", "--format", "xlsx", "--distance", "1500", "--out", str(tmp_path / "r.xlsx"))
    assert result.returncode == 0, result.stderr
    assert "三零村（社区）" in openpyxl.load_workbook(tmp_path / "r.xlsx").sheetnames


@pytest.mark.parametrize(("args", "message"), [
    (["risk", "--from", "2026-02-30", "--format", "csv"], "error [from]"),
    (["risk", "--from", "2026-09-01", "--to", "2026-08-01", "--format", "csv"], "error [to]"),
    (["risk", "--format", "shp"], "error [format]"),
    (["risk", "--format", "csv", "--category", "XYZ"], "error [category]"),
    (["report", "--format", "json", "--distance", "-1"], "error [distance]"),
])
def test_bad_input_exits_2_and_writes_nothing(database, tmp_path, args, message):
    out = tmp_path / "out.file"
    result = run(database, *args, "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
