"""Synthetic demo data for the county Baofeng (宝丰县)."""
