-- Towns 乡镇/街道: polygons simplified to about a pixel at the tile's zoom (:tolerance metres in
-- EPSG:3857), clipped to the tile with a small buffer. Scoped like the GeoJSON API
-- (gridmap.services.scopes.area_condition): polygons meeting the user's area shrunk a little,
-- so neighbours that merely touch it stay out.

-- query: tile
SELECT ST_AsMVT(f, 'towns', 4096, 'geom')
  FROM (SELECT g.code, g.name,
               ST_AsMVTGeom(ST_SimplifyPreserveTopology(ST_Transform(g.geom, 3857), :tolerance),
                            ST_TileEnvelope(:z, :x, :y), 4096, :buffer, true) AS geom
          FROM towns AS g
         WHERE g.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)
           AND (:county_wide
                OR ST_Intersects(g.geom, ST_Buffer((SELECT ST_Union(s.geom)
                                        FROM (SELECT geom FROM towns WHERE code = ANY(CAST(:scope_codes AS text[]))
                                              UNION ALL
                                              SELECT geom FROM villages WHERE code = ANY(CAST(:scope_codes AS text[]))
                                              UNION ALL
                                              SELECT geom FROM grids WHERE code = ANY(CAST(:scope_codes AS text[]))
                                              UNION ALL
                                              SELECT geom FROM patrol_zones WHERE code = ANY(CAST(:scope_codes AS text[]))
                                             ) AS s), -CAST(:scope_shrink AS double precision))))
         ORDER BY g.code) AS f
