-- A record's values live in its own row, as the change log's JSON snapshot
-- (registry.record.values_to_json: [index, type, ttl, timestamp, permission bits, kind,
-- data] per value, in index order). An identifier is then one B-tree insert instead of
-- one per value: a bulk import spent a quarter of the node's time on record_values rows
-- (docs/PERFORMANCE.md, "Values in the record row"), and a resolve miss reads one row.
-- The JSON is the same text the change row already carries, so writing it costs nothing.
ALTER TABLE records ADD COLUMN vals TEXT NOT NULL DEFAULT '[]';
-- record_values' kinds (registry/stores/value_codec.py) to the snapshot's: text 's',
-- bytes 'b' (hex), admin 'a' ("index:permissions:handle" -> [handle, index,
-- permissions]), value list 'v' ("index:handle" lines -> [[handle, index], ...]).
UPDATE records SET vals = (
  SELECT json_group_array(json(j)) FROM (
    SELECT CASE v.kind
      WHEN 0 THEN json_array(v.idx, v.type, v.ttl, v.ts, v.perms, 's', CAST(v.data AS TEXT))
      WHEN 1 THEN json_array(v.idx, v.type, v.ttl, v.ts, v.perms, 'b', lower(hex(v.data)))
      WHEN 2 THEN json_array(v.idx, v.type, v.ttl, v.ts, v.perms, 'a', (
        SELECT json_array(substr(rest, instr(rest, ':') + 1),
                          CAST(substr(t, 1, instr(t, ':') - 1) AS INTEGER),
                          substr(rest, 1, instr(rest, ':') - 1))
        FROM (SELECT t, substr(t, instr(t, ':') + 1) AS rest
              FROM (SELECT CAST(v.data AS TEXT) AS t))))
      ELSE json_array(v.idx, v.type, v.ttl, v.ts, v.perms, 'v', (
        WITH RECURSIVE lines(line, rest) AS (
          SELECT '', CAST(v.data AS TEXT) || char(10)
          UNION ALL
          SELECT substr(rest, 1, instr(rest, char(10)) - 1),
                 substr(rest, instr(rest, char(10)) + 1) FROM lines
          WHERE instr(rest, char(10)) > 0)
        SELECT json_group_array(json_array(substr(line, instr(line, ':') + 1),
                                           CAST(substr(line, 1, instr(line, ':') - 1)
                                                AS INTEGER)))
        FROM lines WHERE line <> ''))
    END AS j FROM record_values v WHERE v.key = records.key ORDER BY v.idx));
DROP TABLE record_values;
