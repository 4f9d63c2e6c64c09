-- Incidents layer. Every value comes in as a bound parameter; gridmap.tiles.registry decides
-- which query a tile needs: raw points where the tile holds few enough, else counts per cell
-- (16 x 16 cells a tile, drawn as circles at the cell centres), read from the cell tables the
-- triggers of migration 0003 keep, or counted from incidents when the scope is narrower than a
-- town (the tables count per town only).
-- Cells are numbered like XYZ tiles (gridmap_cell_x/y of migration 0003): cell (gx, gy) at
-- zoom c is tile (gx, gy) at zoom c, so its centre is (-R + (gx + 0.5) * size, R - (gy + 0.5) * size)
-- with R = 20037508.342789244 and size = 2R / 2^c.

-- fragment: incident_filter
    (:any_category OR i.category = ANY(CAST(:categories AS text[])))
    AND (:any_status OR i.status = ANY(CAST(:statuses AS text[])))
    AND (CAST(:from_ts AS timestamptz) IS NULL OR i.occurred_at >= CAST(:from_ts AS timestamptz))
    AND (CAST(:to_ts AS timestamptz) IS NULL OR i.occurred_at < CAST(:to_ts AS timestamptz))
    -- (written so that with :overdue true the planner sees the open statuses as a plain condition
    -- and can read them from ix_incidents_status: few incidents are open)
    AND (:any_overdue OR (:overdue AND /*@overdue*/) OR (NOT :overdue AND NOT coalesce(/*@overdue*/, false)))
    -- the rule of gridmap.services.incidents.visible_condition (scopes.coded_condition for codes)
    AND (:county_wide
         OR i.town_code = ANY(CAST(:scope_towns AS text[]))
         OR i.village_code = ANY(CAST(:scope_towns AS text[]))
         OR i.village_code = ANY(CAST(:scope_villages AS text[]))
         OR i.grid_code = ANY(CAST(:scope_grids AS text[]))
         OR (:has_zones AND ST_Intersects(i.geom, (SELECT ST_Union(z.geom) FROM patrol_zones AS z
                                                   WHERE z.code = ANY(CAST(:scope_zones AS text[])))))
         OR i.reporter_id = CAST(:reporter_id AS integer)
         OR i.mediation_point_id = ANY(CAST(:mediation_points AS integer[])))

-- fragment: overdue
-- the rule of gridmap.services.incidents.overdue_condition, judged at :as_of (NULL without a deadline)
    (i.status = ANY(CAST(:open_statuses AS text[]))
     AND i.deadline_at < coalesce(i.resolved_at, CAST(:as_of AS timestamptz)))

-- fragment: overdue_at
-- When an open incident is (or will be) overdue, as epoch seconds, so the map can ring it
-- without the tile going stale as time passes; NULL when it never will be.
    CASE WHEN i.status = ANY(CAST(:open_statuses AS text[]))
              AND (i.resolved_at IS NULL OR i.deadline_at < i.resolved_at)
         THEN extract(epoch FROM i.deadline_at)::bigint END

-- fragment: cell_filter
    (:any_category OR c.category = ANY(CAST(:categories AS text[])))
    AND (:any_status OR c.status = ANY(CAST(:statuses AS text[])))
    AND (:county_wide OR c.town_code = ANY(CAST(:scope_towns AS text[])))

-- fragment: raw_cell
    gridmap_cell_x(ST_X(m), :base_zoom) >> :base_shift AS gx,
    gridmap_cell_y(ST_Y(m), :base_zoom) >> :base_shift AS gy

-- fragment: cell_features
-- (ST_AsMVT skips rows whose geometry ST_AsMVTGeom clipped away.)
SELECT ST_AsMVT(f, 'incident_cells', 4096, 'geom')
  FROM (SELECT sum(n)::int AS n,
               ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(-20037508.342789244 + (gx + 0.5) * :cell_size,
                                                    20037508.342789244 - (gy + 0.5) * :cell_size), 3857),
                            ST_TileEnvelope(:z, :x, :y), 4096, :buffer, true) AS geom
          FROM counted
         GROUP BY gx, gy
        HAVING sum(n) > 0) AS f

-- query: count
-- How many incidents the tile holds, counting no further than :limit.
SELECT count(*)
  FROM (SELECT 1
          FROM incidents AS i
         WHERE i.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)
           AND /*@incident_filter*/
         LIMIT :limit) AS s

-- query: count_from_totals
-- At least how many incidents the tile holds, from the finest cell table: tells a tile too
-- busy for points without scanning it.
SELECT coalesce(sum(c.n), 0)
  FROM incident_cell_totals AS c
 WHERE c.zoom = :level AND c.cx BETWEEN :cx_min AND :cx_max AND c.cy BETWEEN :cy_min AND :cy_max
   AND /*@cell_filter*/

-- query: count_from_months
-- The same over the whole months of a period (a lower bound: the days outside them not counted).
SELECT coalesce(sum(c.n), 0)
  FROM incident_cell_months AS c
 WHERE c.zoom = :level AND c.month >= CAST(:month_from AS date) AND c.month <= CAST(:month_to AS date)
   AND c.cx BETWEEN :cx_min AND :cx_max AND c.cy BETWEEN :cy_min AND :cy_max
   AND /*@cell_filter*/

-- query: points_if_few
-- The tile's incidents as points, or NULL when it holds more than :limit (then it is drawn as
-- counts per cell): one scan that stops at :limit + 1 rows.
WITH found AS MATERIALIZED (
    SELECT i.id, i.category, i.status, i.severity, i.deadline_at, /*@overdue_at*/ AS overdue_at, i.geom
      FROM incidents AS i
     WHERE i.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)
       AND /*@incident_filter*/
     LIMIT :limit + 1
)
SELECT CASE WHEN (SELECT count(*) FROM found) <= :limit THEN (
    SELECT coalesce(ST_AsMVT(f, 'incidents', 4096, 'geom', 'id'), '')
      FROM (SELECT id, category, status, severity, extract(epoch FROM deadline_at)::bigint AS deadline,
                   overdue_at,
                   ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y), 4096, :buffer, true) AS geom
              FROM found
             ORDER BY id) AS f)
END

-- query: cells_from_totals
WITH counted AS (
    SELECT c.cx >> :shift AS gx, c.cy >> :shift AS gy, c.n
      FROM incident_cell_totals AS c
     WHERE c.zoom = :level
       AND c.cx BETWEEN :cx_min AND :cx_max AND c.cy BETWEEN :cy_min AND :cy_max
       AND /*@cell_filter*/
)
/*@cell_features*/

-- query: cells_from_months
-- Whole months from incident_cell_months; the days of the period outside whole months are
-- counted from incidents.
WITH counted AS (
    SELECT c.cx >> :shift AS gx, c.cy >> :shift AS gy, c.n
      FROM incident_cell_months AS c
     WHERE c.zoom = :level
       AND c.month >= CAST(:month_from AS date) AND c.month <= CAST(:month_to AS date)
       AND c.cx BETWEEN :cx_min AND :cx_max AND c.cy BETWEEN :cy_min AND :cy_max
       AND /*@cell_filter*/
    UNION ALL
    SELECT /*@raw_cell*/, 1
      FROM (SELECT ST_Transform(i.geom, 3857) AS m
              FROM incidents AS i
             WHERE i.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)
               AND ((i.occurred_at >= CAST(:edge1_from AS timestamptz) AND i.occurred_at < CAST(:edge1_to AS timestamptz))
                    OR (i.occurred_at >= CAST(:edge2_from AS timestamptz) AND i.occurred_at < CAST(:edge2_to AS timestamptz)))
               AND /*@incident_filter*/) AS r
)
/*@cell_features*/

-- query: cells_from_incidents
WITH counted AS (
    SELECT /*@raw_cell*/, 1 AS n
      FROM (SELECT ST_Transform(i.geom, 3857) AS m
              FROM incidents AS i
             WHERE i.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)
               AND /*@incident_filter*/) AS r
)
/*@cell_features*/

-- query: nearest
-- What is at a clicked point: incidents within :radius metres (EPSG:3857) of it, nearest first.
SELECT i.id, i.category, i.subcategory, i.status, i.severity, i.occurred_at, i.deadline_at,
       coalesce(/*@overdue*/, false) AS overdue, i.description, i.grid_code, g.name AS grid_name, v.name AS village_name,
       ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, count(*) OVER () AS total
  FROM incidents AS i
  JOIN grids AS g ON g.code = i.grid_code
  JOIN villages AS v ON v.code = i.village_code
 WHERE i.geom && ST_Transform(ST_Expand(ST_SetSRID(ST_MakePoint(:px, :py), 3857), :radius), 4326)
   AND ST_DWithin(ST_Transform(i.geom, 3857), ST_SetSRID(ST_MakePoint(:px, :py), 3857), :radius)
   AND /*@incident_filter*/
 ORDER BY ST_Distance(ST_Transform(i.geom, 3857), ST_SetSRID(ST_MakePoint(:px, :py), 3857)), i.id
 LIMIT :limit

-- query: cell_summary
-- The incidents counted in one cell, by category and status.
SELECT i.category, i.status, count(*) AS n
  FROM (SELECT i.*, ST_Transform(i.geom, 3857) AS m
          FROM incidents AS i
         WHERE i.geom && ST_Transform(ST_MakeEnvelope(:west, :south, :east, :north, 3857), 4326)
           AND /*@incident_filter*/) AS i
 WHERE gridmap_cell_x(ST_X(m), :base_zoom) >> :base_shift = :gx
   AND gridmap_cell_y(ST_Y(m), :base_zoom) >> :base_shift = :gy
 GROUP BY i.category, i.status
