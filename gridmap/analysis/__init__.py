"""Pure analysis on (Geo)DataFrames: risk, hot spots, patrol tracks, coverage and routing; no Flask, no database."""
