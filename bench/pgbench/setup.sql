-- Tables for the pgbench capacity runs (bench/pgbench/run).
CREATE TABLE rm (id int PRIMARY KEY, status text, n bigint, position bigint, payload text);
INSERT INTO rm SELECT g, 'CREATED', 0, 0, repeat('x', 200) FROM generate_series(1, 100000) g;
CREATE TABLE ev (position bigserial PRIMARY KEY, stream text, seq int, payload text, UNIQUE (stream, seq));
