"""Split a folium map into the three parts a page template embeds."""
from __future__ import annotations

from dataclasses import dataclass

import folium
from markupsafe import Markup


@dataclass(frozen=True)
class MapParts:
    header: Markup
    html: Markup
    script: Markup


def map_parts(m: folium.Map) -> MapParts:
    root = m.get_root()
    root.render()
    return MapParts(Markup(root.header.render()), Markup(root.html.render()), Markup(root.script.render()))
