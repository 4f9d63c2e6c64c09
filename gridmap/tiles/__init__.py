"""Vector tiles built in PostGIS: one SQL file per layer and a fixed registry (registry.py)."""
