-- One transaction of ten primary-key UPDATEs, like a read-model batch (bench/pgbench/run).
\set p random(1, 1000000000)
BEGIN;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
\set a random(1, 100000)
UPDATE rm SET n = n + 1, position = :p WHERE id = :a;
COMMIT;
