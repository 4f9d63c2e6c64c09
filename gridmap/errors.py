"""Typed errors raised by services, tiles and importers; the web layer maps them to JSON, the CLI to
exit status 2. Plain Python, importable from every layer below the web."""
from __future__ import annotations


class GridmapError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, *, code: str | None = None, details=None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message, "field": self.field}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class ValidationError(GridmapError):
    status = 400
    code = "invalid"


class NotFound(GridmapError):
    status = 404
    code = "not_found"


class Forbidden(GridmapError):
    status = 403
    code = "forbidden"


class UnsupportedMediaType(GridmapError):
    status = 415
    code = "unsupported_media_type"


class Conflict(GridmapError):
    status = 409
    code = "conflict"


YES_WORDS = ("1", "true", "yes", "on", "y")
NO_WORDS = ("0", "false", "no", "off", "n")


def parse_bool(value, field: str) -> bool | None:
    """A yes/no value from a query string, form or JSON body; None when absent or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in YES_WORDS:
        return True
    if text in NO_WORDS:
        return False
    raise ValidationError(f"{field} must be true or false (1 or 0)", field)
