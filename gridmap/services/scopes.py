"""What a user may see: a SQL condition per table from the user's role and scopes."""
from __future__ import annotations

from sqlalchemy import false, func, or_, select, true
from sqlalchemy.orm import Session

from gridmap.catalog import COUNTY_WIDE_ROLES, SCOPE_SHRINK_DEGREES
from gridmap.models import Grid, PatrolZone, Town, User, Village


def is_county_wide(user: User) -> bool:
    return user.role in COUNTY_WIDE_ROLES


def scope_area(session: Session, user: User):
    """The union of the user's scope polygons as a SQL expression (a scalar subquery)."""
    parts = []
    for model in (Town, Village, Grid, PatrolZone):
        parts.append(select(model.geom).where(model.code.in_(user.scopes)))
    union = parts[0].union_all(*parts[1:]).subquery()
    return select(func.ST_Union(union.c.geom)).scalar_subquery()




def area_condition(session: Session, user: User, geom_column, points: bool = False):
    """Rows whose geometry lies (at least partly, beyond touching) inside the user's scope."""
    if is_county_wide(user):
        return true()
    if not user.scopes:
        return false()
    area = scope_area(session, user)
    if points:
        return func.ST_Intersects(geom_column, area)
    return func.ST_Intersects(geom_column, func.ST_Buffer(area, -SCOPE_SHRINK_DEGREES))


def coded_condition(user: User, town_col, village_col, grid_col, geom_col=None, session=None):
    """Condition for tables carrying town/village/grid codes (incidents): a GROUP BY-friendly test."""
    if is_county_wide(user):
        return true()
    conds = []
    for code in user.scopes:
        if len(code) == 15:
            conds.append(grid_col == code)
        elif len(code) == 12 and code.endswith("000") and code[6:9] != "000":
            conds.append(or_(town_col == code, village_col == code))
        elif len(code) == 12:
            conds.append(village_col == code)
    zone_codes = [c for c in user.scopes if not c.isdigit()]
    if zone_codes and geom_col is not None:
        zone = select(func.ST_Union(PatrolZone.geom)).where(PatrolZone.code.in_(zone_codes)).scalar_subquery()
        conds.append(func.ST_Intersects(geom_col, zone))
    return or_(*conds) if conds else false()
