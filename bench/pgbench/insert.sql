-- One autocommit INSERT of an event-sized row (bench/pgbench/run).
\set s random(1, 1000000000)
INSERT INTO ev (stream, seq, payload) VALUES (:s::text, 1, repeat('x', 600)) ON CONFLICT DO NOTHING;
