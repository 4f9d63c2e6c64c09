"""SQLAlchemy models; importing this package registers every table on Base.metadata."""
from gridmap.models.accounts import ApiToken, AuditEntry, User
from gridmap.models.base import Base
from gridmap.models.geography import County, Grid, Town, Village
from gridmap.models.incidents import Incident, IncidentCategory, IncidentEvent, IncidentSubcategory
from gridmap.models.places import MediationPoint, PatrolZone, PoliceStation
from gridmap.models.patrol import PatrolRoute, PatrolTrack, PatrolTrackPoint, Road
from gridmap.models.risk import GridAdjacencyCache
from gridmap.models.tiles import IncidentCellMonth, IncidentCellTotal, TileVersion
from gridmap.models.registries import (CaseReview, CaseReviewItem, Inspection, LegalActivity, Place,
                                      StaffAssignment)

__all__ = [
    "ApiToken", "AuditEntry", "Base", "County", "Grid", "Incident", "IncidentCategory",
    "IncidentEvent", "IncidentSubcategory", "MediationPoint", "PatrolZone", "PoliceStation",
    "Town", "User", "Village",
]
__all__ += ["CaseReview", "CaseReviewItem", "Inspection", "LegalActivity", "Place", "StaffAssignment"]
__all__ += ["IncidentCellMonth", "IncidentCellTotal", "TileVersion"]
__all__ += ["GridAdjacencyCache"]
__all__ += ["PatrolRoute", "PatrolTrack", "PatrolTrackPoint", "Road"]
