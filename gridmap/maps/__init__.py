"""Folium map builders: data in, folium.Map out. No Flask, no SQLAlchemy."""
