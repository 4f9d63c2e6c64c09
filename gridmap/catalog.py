"""The domain's fixed vocabulary: categories, workflow states, roles, mediation-point kinds.

Pure data, importable from every layer (analysis, models, web, the demo generator).
Deadlines here are the defaults written into the ``categories`` table by the first
migration; the table is what the application reads, so a county can change them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    deadline_days: int
    colour: str
    subcategories: tuple[tuple[str, str, str], ...]  # (code, name_zh, name_en)


CATEGORIES: tuple[Category, ...] = (
    Category("DSP", "矛盾纠纷", "Dispute", 15, "#e6550d", (
        ("neighbour", "邻里纠纷", "Neighbour"),
        ("family", "婚姻家庭", "Marriage/family"),
        ("land", "土地山林", "Land/forest"),
        ("wages", "劳资纠纷", "Wage arrears"),
        ("enterprise", "涉企纠纷", "Enterprise-related"),
        ("property", "物业纠纷", "Property management"),
        ("demolition", "征地拆迁", "Land acquisition/demolition"),
        ("other", "其他纠纷", "Other"),
    )),
    Category("SEC", "治安", "Public security", 7, "#de2d26", (
        ("theft", "盗窃", "Theft"),
        ("fraud", "诈骗（含电信诈骗）", "Fraud incl. telecom fraud"),
        ("fight", "打架斗殴", "Fight"),
        ("gang_tip", "涉黑涉恶线索", "Organized-crime tip"),
        ("vice", "黄赌毒", "Gambling/drugs"),
        ("other", "其他治安", "Other"),
    )),
    Category("FIR", "消防隐患", "Fire hazard", 3, "#fd8d3c", (
        ("nine_small", "九小场所隐患", "Nine small places hazard"),
        ("ebike", "电动车违规充电", "E-bike charging"),
        ("blocked_exit", "堵塞通道", "Blocked exits"),
        ("other", "其他消防隐患", "Other"),
    )),
    Category("HAZ", "危爆物品", "Hazardous chemicals/explosives", 3, "#756bb1", (
        ("storage", "储存", "Storage"),
        ("transport", "运输", "Transport"),
        ("sale", "销售", "Sale"),
    )),
    Category("LOG", "寄递物流", "Delivery logistics", 7, "#3182bd", (
        ("real_name", "实名收寄", "Real-name registration"),
        ("inspection", "收寄验视", "Inspection on receipt"),
        ("xray", "过机安检", "X-ray screening"),
    )),
    Category("TRF", "道路交通", "Road traffic", 10, "#31a354", (
        ("hazard_spot", "隐患点", "Hazard spot"),
        ("accident", "交通事故", "Accident"),
    )),
    Category("ACC", "安全事故", "Safety accident", 10, "#636363", (
        ("injury", "有人员受伤", "With injury"),
        ("death", "有人员死亡", "With death"),
    )),
    Category("PET", "信访", "Petition", 30, "#d6616b", (
        ("village", "村级信访", "At village"),
        ("town", "乡镇信访", "At town"),
        ("county", "县级信访", "At county"),
        ("above_county", "越级信访", "Above county"),
    )),
)
CATEGORY_BY_CODE = {c.code: c for c in CATEGORIES}
SUBCATEGORY_CODES = {c.code: tuple(s[0] for s in c.subcategories) for c in CATEGORIES}

LEGAL_CLASSES = ("none", "public_order", "criminal")
LEGAL_CLASS_ZH = {"none": "无", "public_order": "治安案件", "criminal": "刑事案件"}
RESOLUTION_LEVELS = ("village", "town", "county")
RESOLUTION_LEVEL_ZH = {"village": "村级", "town": "乡镇级", "county": "县级及以上"}
SEVERITIES = (1, 2, 3, 4)

# Workflow after GB/T 30428: reported -> accepted | rejected | duplicate -> dispatched
# -> in_progress -> resolved -> closed -> followed_up.
STATUSES = (
    "reported", "accepted", "rejected", "duplicate", "dispatched",
    "in_progress", "resolved", "closed", "followed_up",
)
STATUS_ZH = {
    "reported": "上报", "accepted": "受理", "rejected": "不予受理", "duplicate": "重复",
    "dispatched": "派遣", "in_progress": "处置中", "resolved": "办结",
    "closed": "核查结案", "followed_up": "已回访",
}
OPEN_STATUSES = ("reported", "accepted", "dispatched", "in_progress", "resolved")
TERMINAL_STATUSES = ("rejected", "duplicate", "closed", "followed_up")

ROLES = ("grid_worker", "mediator", "police", "town_supervisor", "county_officer", "admin", "viewer")
ROLE_ZH = {
    "grid_worker": "网格员", "mediator": "调解员", "police": "民警/辅警",
    "town_supervisor": "乡镇综治中心", "county_officer": "县委政法委", "admin": "管理员",
    "viewer": "领导/只读",
}
# Roles that see every record in the county without a scope.
COUNTY_WIDE_ROLES = ("county_officer", "admin", "viewer")

MEDIATION_KINDS = ("bailitang", "shuoshiting", "committee", "police_office", "legal_station")
MEDIATION_KIND_ZH = {
    "bailitang": "摆理堂", "shuoshiting": "说事厅", "committee": "人民调解委员会",
    "police_office": "警务室", "legal_station": "法律服务站",
}
MEDIATION_OUTCOMES = ("agreement", "failed", "transferred")
MEDIATION_OUTCOME_ZH = {"agreement": "达成协议", "failed": "调解不成", "transferred": "转办"}

# Where a town supervisor dispatches an accepted case (派遣对象).
DISPATCH_KINDS = ("village", "police_station", "mediation_point", "town_office")
DISPATCH_KIND_ZH = {"village": "村（居）委会", "police_station": "派出所", "mediation_point": "调解阵地",
                    "town_office": "乡镇职能部门"}

# --- registries and campaigns (issue 7) -----------------------------------------------------
# Places that must be inspected, with the subkinds each may have.
PLACE_KINDS = ("nine_small", "hazardous", "delivery", "enterprise")
PLACE_KIND_ZH = {"nine_small": "九小场所", "hazardous": "危爆物品单位", "delivery": "寄递网点", "enterprise": "企业/单位"}
PLACE_SUBKINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "nine_small": (("shop", "小商店"), ("restaurant", "小餐饮"), ("hotel", "小旅馆"), ("entertainment", "小娱乐场所"),
                   ("internet_cafe", "小网吧"), ("clinic", "小诊所"), ("school", "小培训机构"),
                   ("workshop", "小加工作坊"), ("warehouse", "小仓储")),
    # The same codes as the HAZ incident subcategories, so a hazard found maps straight onto one.
    "hazardous": (("storage", "储存"), ("transport", "运输"), ("sale", "销售")),
    "delivery": (("express", "快递网点"), ("logistics", "物流货运"), ("postal", "邮政网点")),
    "enterprise": (("industrial", "工业企业"), ("commercial", "商贸企业"), ("construction", "建筑工地"),
                   ("other", "其他单位")),
}
DEFAULT_INSPECTION_INTERVAL_DAYS = {"nine_small": 90, "hazardous": 30, "delivery": 30, "enterprise": 180}
# Inspection checklists per place kind; the delivery outlets' one is the "三个100%", whose codes
# are the LOG incident subcategories.
INSPECTION_CHECKLISTS: dict[str, tuple[tuple[str, str], ...]] = {
    "nine_small": (("extinguishers", "灭火器材完好有效"), ("exits", "安全出口、疏散通道畅通"),
                   ("wiring", "电气线路规范"), ("no_dwelling", "无“三合一”违规住人"),
                   ("ebike", "无电动车违规停放充电")),
    "hazardous": (("licence", "许可证照齐全有效"), ("storage", "专库储存、双人双锁"), ("ledger", "出入库台账完整"),
                  ("security", "技防物防设施完好"), ("staff", "从业人员持证上岗")),
    "delivery": (("real_name", "100%实名收寄"), ("inspection", "100%收寄验视"), ("xray", "100%过机安检")),
    "enterprise": (("responsibility", "安全生产责任落实"), ("fire", "消防设施完好"),
                   ("disputes", "劳资及涉企纠纷已排查"), ("security", "内部安保制度落实")),
}
INSPECTION_STATUS_ZH = {"ok": "正常", "due": "即将到期", "overdue": "超期未检"}

# "一村一警一律师" and the other people assigned to a village or grid.
STAFF_ROLES = ("grid_worker", "police", "lawyer", "mediator", "elder")
STAFF_ROLE_ZH = {"grid_worker": "网格员", "police": "驻村民警（一村一警）", "lawyer": "法律顾问（一村一律师）",
                 "mediator": "调解员", "elder": "“五老”志愿者"}

# Legal-publicity activities: the "法律六进".
ACTIVITY_KINDS = ("agencies", "villages", "communities", "schools", "enterprises", "units")
ACTIVITY_KIND_ZH = {"agencies": "进机关", "villages": "进乡村", "communities": "进社区", "schools": "进学校",
                    "enterprises": "进企业", "units": "进单位"}

# Case-quality review (案件评查): how the sample is drawn, and the checklist with each item's maximum.
REVIEW_METHODS = ("random", "overdue", "escalated", "complaints", "chosen")
REVIEW_METHOD_ZH = {"random": "随机抽取", "overdue": "超期案件", "escalated": "上交案件", "complaints": "不满意回访",
                    "chosen": "指定案件"}
REVIEW_CHECKLIST: tuple[tuple[str, str, int], ...] = (
    ("facts", "事实记录完整", 30), ("deadline", "按期办结", 30), ("level", "办结层级适当", 20),
    ("follow_up", "回访落实", 20),
)

# Sections a campaign bulletin (定期通报) may hold.
BULLETIN_SECTIONS = ("incidents", "cases", "three_zero", "inspections", "patrol", "publicity", "ranking")
BULLETIN_SECTION_ZH = {"incidents": "事件分类统计", "cases": "案件受理办结情况", "three_zero": "“三零”创建情况",
                       "inspections": "重点场所巡检情况", "patrol": "巡逻覆盖情况", "publicity": "普法宣传（法律六进）",
                       "ranking": "乡镇排名"}


# Neighbouring polygons share edges only up to floating-point noise; shrinking a user's scope by
# about 30 m before testing polygons keeps neighbours that merely touch out of scope.
SCOPE_SHRINK_DEGREES = 0.0003
