"""Seeded demo registries for Baofeng: places that must be inspected, a year of inspections,
village staff ("一村一警一律师", grid workers, mediators, 五老) and legal-publicity activities.

Pure: reads ``villages.geojson``, ``grids.geojson`` and ``towns.geojson`` (and ``manifest.json``'s
``today``) written by :mod:`gridmap.demo.generator`, writes ``places.geojson``, ``inspections.csv``,
``staff.csv`` and ``activities.geojson`` beside them. The same seed and inputs give byte-identical
files. Every name, telephone number and place here is made up; no resident appears anywhere.

Run ``python -m gridmap.demo.registries --dir geodata/baofeng``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyogrio
import shapely

from gridmap.catalog import DEFAULT_INSPECTION_INTERVAL_DAYS, INSPECTION_CHECKLISTS, PLACE_SUBKINDS

DEFAULT_TODAY = date(2026, 11, 1)
FILES = ("places.geojson", "inspections.csv", "staff.csv", "activities.geojson")

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国红梅志辉玉兰春燕新民海燕丹鹏飞俊峰晓东文斌宏亮"
LAW_FIRMS = ("正义", "明德", "汝瓷", "鹰城", "公信", "民安", "致远", "恒信")
TOPICS = ("民法典宣传", "反电信网络诈骗宣传", "禁毒宣传", "扫黑除恶常态化宣传", "安全生产法宣传",
          "未成年人保护法宣传", "信访工作条例宣传", "宪法宣传", "反家庭暴力法宣传", "消防安全知识宣讲")
ACTIVITY_SHARES = {"villages": 0.40, "communities": 0.15, "schools": 0.15, "enterprises": 0.10,
                   "agencies": 0.10, "units": 0.10}
AUDIENCE_RANGE = {"villages": (30, 220), "communities": (40, 260), "schools": (120, 900),
                  "enterprises": (20, 180), "agencies": (20, 120), "units": (15, 100)}
ORGANISERS = ("县司法局", "县委政法委", "县公安局", "县法院", "县检察院", "{town}司法所", "{town}综治中心",
              "{town}派出所")
NINE_SMALL_NAMES = {"shop": "便民超市", "restaurant": "小吃店", "hotel": "宾馆", "entertainment": "KTV",
                    "internet_cafe": "网吧", "clinic": "诊所", "school": "培训学校", "workshop": "加工作坊",
                    "warehouse": "仓储点"}
HAZARD_NAMES = {"storage": "化工仓库", "transport": "危险货物运输公司", "sale": "烟花爆竹经营点"}
DELIVERY_NAMES = {"express": "快递驿站", "logistics": "物流货运部", "postal": "邮政代办点"}
ENTERPRISE_NAMES = {"industrial": ("机械厂", "陶瓷厂", "建材厂", "耐火材料厂"), "commercial": ("商贸有限公司",),
                    "construction": ("建筑工地",), "other": ("农业专业合作社", "食品厂")}
RESPONSIBLE = {"nine_small": "经营者", "hazardous": "安全负责人", "delivery": "网点负责人", "enterprise": "法定代表人"}
HAZARD_TEXT = {
    "extinguishers": "灭火器过期未更换", "exits": "安全出口堆放杂物", "wiring": "电线私拉乱接",
    "no_dwelling": "经营场所内住人", "ebike": "电动车在室内充电", "licence": "许可证过期未换证",
    "storage": "未按规定分类储存", "ledger": "出入库台账缺失", "security": "监控设备损坏",
    "staff": "从业人员未持证", "real_name": "未落实实名收寄", "inspection": "未开箱验视",
    "xray": "未过机安检", "responsibility": "安全责任未落实到岗", "fire": "消防栓无水",
    "disputes": "拖欠工资引发纠纷苗头",
}


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """An independent random stream per purpose, so changing one layer leaves the others alone."""
    return np.random.default_rng([seed, zlib.crc32(("registries:" + purpose).encode("utf-8"))])


def _is_community(code: str) -> bool:
    return int(code[-3:]) < 200


def _town_short(name: str) -> str:
    return re.sub(r"(街道|镇|乡)$", "", name)


def _person(rng: np.random.Generator) -> str:
    surname = SURNAMES[int(rng.integers(len(SURNAMES)))]
    given = "".join(GIVEN[int(i)] for i in rng.integers(len(GIVEN), size=int(rng.integers(1, 3))))
    return surname + given


def _phone(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        phone = f"0375-6{int(rng.integers(0, 1_000_000)):06d}"
        if phone not in taken:
            taken.add(phone)
            return phone


def points_in(polygon, count: int, rng: np.random.Generator, inset: float = 0.0003) -> np.ndarray:
    """``count`` random lon/lat points inside ``polygon`` (kept ``inset`` degrees off its edge)."""
    region = polygon.buffer(-inset)
    if region.is_empty:
        region = polygon
    minx, miny, maxx, maxy = region.bounds
    out = np.empty((0, 2))
    while len(out) < count:
        candidates = np.column_stack([rng.uniform(minx, maxx, 4 * count + 8), rng.uniform(miny, maxy, 4 * count + 8)])
        inside = shapely.contains_xy(region, candidates[:, 0], candidates[:, 1])
        out = np.vstack([out, candidates[inside]])
    return np.round(out[:count], 7)


@dataclass
class Inputs:
    villages: list[dict]
    grids: list[dict]
    towns: dict[str, str]
    today: date


def read_inputs(directory: Path) -> Inputs:
    villages = pyogrio.read_dataframe(directory / "villages.geojson")
    grids = pyogrio.read_dataframe(directory / "grids.geojson")
    towns = pyogrio.read_dataframe(directory / "towns.geojson", read_geometry=False)
    today = DEFAULT_TODAY
    manifest = directory / "manifest.json"
    if manifest.exists():
        today = date.fromisoformat(json.loads(manifest.read_text(encoding="utf-8")).get("today", today.isoformat()))
    village_rows = [{"code": str(r.code), "name": r.name, "town_code": str(r.town_code), "geometry": g}
                    for r, g in zip(villages.itertuples(), villages.geometry)]
    grid_rows = [{"code": str(r.code), "village_code": str(r.village_code)} for r in grids.itertuples()]
    return Inputs(sorted(village_rows, key=lambda v: v["code"]), sorted(grid_rows, key=lambda g: g["code"]),
                  {str(c): n for c, n in zip(towns["code"], towns["name"])}, today)


# --- staff ------------------------------------------------------------------------------------

def build_staff(inputs: Inputs, seed: int) -> list[dict]:
    """Grid workers per grid (a few grids left without), one police officer serving 2-4 neighbouring
    villages and one lawyer serving 3-6 (a few villages left without each), 1-3 mediators and 0-3
    五老 volunteers per village."""
    rng = rng_for(seed, "staff")
    phones: set[str] = set()
    staff: list[dict] = []
    since_first = inputs.today - timedelta(days=5 * 365)

    def since() -> str:
        return (since_first + timedelta(days=int(rng.integers(0, 4 * 365)))).isoformat()

    villages_by_town: dict[str, list[dict]] = {}
    for village in inputs.villages:
        villages_by_town.setdefault(village["town_code"], []).append(village)
    for town_code in sorted(villages_by_town):
        town = inputs.towns.get(town_code, "")
        group = villages_by_town[town_code]
        for role, (low, high), missing_share, organisation in (
                ("police", (2, 4), 0.06, f"{_town_short(town)}派出所"),
                ("lawyer", (3, 6), 0.08, None)):
            index = 0
            while index < len(group):
                size = int(rng.integers(low, high + 1))
                name, phone = _person(rng), _phone(rng, phones)
                firm = organisation or f"宝丰县{LAW_FIRMS[int(rng.integers(len(LAW_FIRMS)))]}律师事务所"
                start = since()
                for village in group[index:index + size]:
                    if rng.random() < missing_share:
                        continue
                    staff.append({"role": role, "name": name, "phone": phone, "organisation": firm,
                                  "village_code": village["code"], "grid_code": "", "since": start})
                index += size
    grids_by_village: dict[str, list[str]] = {}
    for grid in inputs.grids:
        grids_by_village.setdefault(grid["village_code"], []).append(grid["code"])
    for village in inputs.villages:
        for grid_code in grids_by_village.get(village["code"], []):
            if rng.random() < 0.04:
                continue
            staff.append({"role": "grid_worker", "name": _person(rng), "phone": _phone(rng, phones),
                          "organisation": village["name"] + ("居委会" if _is_community(village["code"]) else "委会"),
                          "village_code": village["code"], "grid_code": grid_code, "since": since()})
        for _ in range(int(rng.integers(1, 4))):
            staff.append({"role": "mediator", "name": _person(rng), "phone": _phone(rng, phones),
                          "organisation": f"{village['name']}人民调解委员会", "village_code": village["code"],
                          "grid_code": "", "since": since()})
        for _ in range(int(rng.integers(0, 4))):
            staff.append({"role": "elder", "name": _person(rng), "phone": "", "organisation": "“五老”志愿服务队",
                          "village_code": village["code"], "grid_code": "", "since": since()})
    staff.sort(key=lambda s: (s["village_code"], s["role"], s["grid_code"], s["name"], s["phone"]))
    return staff


# --- places -----------------------------------------------------------------------------------

def build_places(inputs: Inputs, seed: int) -> list[dict]:
    """About 3 places of the 九小场所 per village (more in communities), a delivery outlet in most
    town seats and some villages, a few 危爆物品 sites and some enterprises per town."""
    rng = rng_for(seed, "places")
    places: list[dict] = []
    nine_small = [code for code, _ in PLACE_SUBKINDS["nine_small"]]
    weights = np.array([30, 22, 8, 5, 6, 8, 6, 9, 6], dtype=float)
    for village in inputs.villages:
        community = _is_community(village["code"])
        counts = {"nine_small": int(rng.integers(3, 8) if community else rng.integers(1, 5)),
                  "delivery": int(rng.random() < (0.7 if community else 0.12)),
                  "hazardous": int(rng.random() < 0.07),
                  "enterprise": int(rng.integers(0, 3) if community else rng.random() < 0.2)}
        total = sum(counts.values())
        if total == 0:
            continue
        points = points_in(village["geometry"], total, rng)
        town = inputs.towns.get(village["town_code"], "")
        stem = village["name"].removesuffix("村").removesuffix("社区")
        index = 0
        for kind in ("nine_small", "delivery", "hazardous", "enterprise"):
            for _ in range(counts[kind]):
                if kind == "nine_small":
                    subkind = nine_small[int(rng.choice(len(nine_small), p=weights / weights.sum()))]
                    name = f"{stem}{NINE_SMALL_NAMES[subkind]}"
                elif kind == "delivery":
                    subkind = ("express", "logistics", "postal")[int(rng.choice(3, p=[0.7, 0.15, 0.15]))]
                    name = f"{stem}{DELIVERY_NAMES[subkind]}"
                elif kind == "hazardous":
                    subkind = ("storage", "transport", "sale")[int(rng.choice(3, p=[0.3, 0.2, 0.5]))]
                    name = f"{stem}{HAZARD_NAMES[subkind]}"
                else:
                    subkind = ("industrial", "commercial", "construction", "other")[
                        int(rng.choice(4, p=[0.45, 0.25, 0.1, 0.2]))]
                    options = ENTERPRISE_NAMES[subkind]
                    name = f"宝丰县{stem}{options[int(rng.integers(len(options)))]}"
                registered = inputs.today - timedelta(days=int(rng.integers(30, 6 * 365)))
                lon, lat = points[index]
                index += 1
                places.append({"kind": kind, "subkind": subkind, "name": name,
                               "address": f"{town}{village['name']}{int(rng.integers(1, 300))}号",
                               "responsible_role": RESPONSIBLE[kind],
                               "inspection_interval_days": DEFAULT_INSPECTION_INTERVAL_DAYS[kind],
                               "registered_on": registered.isoformat(), "village_code": village["code"],
                               "lon": float(lon), "lat": float(lat)})
    for number, place in enumerate(places, start=1):
        place["ref"] = f"BF-P{number:05d}"
    return places


def build_inspections(inputs: Inputs, places: list[dict], staff: list[dict], seed: int) -> list[dict]:
    """A year of inspections up to the day before ``today``: most places on time, some lapsing (so
    the due and overdue lists have entries); about 5% of checklist items fail, and a failed item
    is recorded as a hazard found (rectified on the spot) half the time."""
    rng = rng_for(seed, "inspections")
    workers: dict[str, list[str]] = {}
    for person in staff:
        if person["role"] == "grid_worker":
            workers.setdefault(person["village_code"], []).append(person["name"])
    first = inputs.today - timedelta(days=365)
    out: list[dict] = []
    for place in places:
        interval = place["inspection_interval_days"]
        registered = date.fromisoformat(place["registered_on"])
        diligent = rng.random() < 0.8
        day = max(registered, first - timedelta(days=int(rng.integers(0, interval))))
        items = [code for code, _ in INSPECTION_CHECKLISTS[place["kind"]]]
        names = workers.get(place["village_code"]) or ["综治中心检查组"]
        while True:
            if diligent:
                step = interval * rng.uniform(0.7, 1.0)
            else:
                step = interval * (rng.uniform(0.8, 1.1) if rng.random() < 0.6 else rng.uniform(1.2, 2.2))
            day = day + timedelta(days=max(1, int(step)))
            if day >= inputs.today:
                break
            if day < first or day < registered:
                continue
            checklist = {item: bool(rng.random() >= 0.05) for item in items}
            failed = [item for item, ok in checklist.items() if not ok]
            hazard = bool(failed) and rng.random() < 0.5
            out.append({"place_ref": place["ref"], "inspected_on": day.isoformat(),
                        "inspector_name": names[int(rng.integers(len(names)))],
                        "checklist": json.dumps(checklist, ensure_ascii=False, sort_keys=True),
                        "hazard_found": "true" if hazard else "false",
                        "hazard_description": "；".join(HAZARD_TEXT[i] for i in failed) if hazard else "",
                        "note": "已现场督促整改" if hazard else ""})
    out.sort(key=lambda i: (i["inspected_on"], i["place_ref"]))
    return out


def build_activities(inputs: Inputs, seed: int, count: int = 600) -> list[dict]:
    """``count`` legal-publicity activities ("法律六进") over the year before ``today``."""
    rng = rng_for(seed, "activities")
    kinds = list(ACTIVITY_SHARES)
    shares = np.array([ACTIVITY_SHARES[k] for k in kinds])
    communities = [v for v in inputs.villages if _is_community(v["code"])]
    rural = [v for v in inputs.villages if not _is_community(v["code"])]
    out = []
    for _ in range(count):
        kind = kinds[int(rng.choice(len(kinds), p=shares))]
        pool = communities if kind in ("communities", "agencies", "units") and communities else rural
        if kind == "villages":
            pool = rural
        village = pool[int(rng.integers(len(pool)))]
        lon, lat = points_in(village["geometry"], 1, rng)[0]
        town = inputs.towns.get(village["town_code"], "")
        low, high = AUDIENCE_RANGE[kind]
        organiser = ORGANISERS[int(rng.integers(len(ORGANISERS)))].format(town=town)
        held = inputs.today - timedelta(days=int(rng.integers(1, 366)))
        topic = TOPICS[int(rng.integers(len(TOPICS)))]
        out.append({"held_on": held.isoformat(), "kind": kind, "title": f"{village['name']}{topic}",
                    "audience": int(rng.integers(low, high + 1)), "organiser": organiser,
                    "lon": float(lon), "lat": float(lat)})
    out.sort(key=lambda a: (a["held_on"], a["title"], a["lon"]))
    return out


# --- writing ----------------------------------------------------------------------------------

def _feature_collection(rows: list[dict]) -> str:
    features = []
    for row in rows:
        props = {k: v for k, v in row.items() if k not in ("lon", "lat")}
        features.append({"type": "Feature", "properties": props,
                         "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]}})
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False, indent=None,
                      separators=(",", ":")) + "\n"


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def build_registries(directory: Path, seed: int = 2023) -> dict[str, int]:
    """Write the four demo registry files into ``directory`` (beside the county's own files).

    Parameters
    ----------
    directory : Path
        Holds ``villages.geojson``, ``grids.geojson``, ``towns.geojson`` (and ``manifest.json``).
    seed : int, default 2023

    Returns
    -------
    dict
        Rows written per file kind.
    """
    directory = Path(directory)
    inputs = read_inputs(directory)
    staff = build_staff(inputs, seed)
    places = build_places(inputs, seed)
    inspections = build_inspections(inputs, places, staff, seed)
    activities = build_activities(inputs, seed)
    (directory / "places.geojson").write_text(_feature_collection(places), encoding="utf-8")
    (directory / "activities.geojson").write_text(_feature_collection(activities), encoding="utf-8")
    (directory / "staff.csv").write_text(_csv(staff, ["role", "name", "phone", "organisation", "village_code",
                                                      "grid_code", "since"]), encoding="utf-8")
    (directory / "inspections.csv").write_text(_csv(inspections, ["place_ref", "inspected_on", "inspector_name",
                                                                  "checklist", "hazard_found",
                                                                  "hazard_description", "note"]),
                                               encoding="utf-8")
    return {"places": len(places), "inspections": len(inspections), "staff": len(staff),
            "activities": len(activities)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("geodata/baofeng"))
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args(argv)
    for name, n in build_registries(args.dir, args.seed).items():
        print(f"{name}: {n}")


if __name__ == "__main__":
    main()
