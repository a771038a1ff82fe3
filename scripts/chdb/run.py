"""Runs analytics SQL on a current ClickHouse engine, in process (chdb-core).

Production runs current ClickHouse; the test server is 18.16. The analytics
tests write what they ran on 18.16 into a directory and call this with the
cached venv's Python (scripts/services installs it):

    DIR/schema.sql          statements separated by ";\\n" (DDL and views)
    DIR/data/TABLE.jsonl    rows to insert (JSONEachRow), TABLE = db.table
    DIR/queries/NAME.sql    queries to run

and it writes DIR/results/NAME.json (ClickHouse's JSONCompact). Any
statement that fails makes it exit 1, naming the statement.
"""

import os
import sys
import tempfile

from chdb import session


def main(directory):
    with tempfile.TemporaryDirectory() as state:
        s = session.Session(state)
        print("chdb", s.query("SELECT version()", "CSV").bytes().decode().strip(), file=sys.stderr)
        schema = open(os.path.join(directory, "schema.sql")).read()
        for statement in [x.strip() for x in schema.split(";\n") if x.strip()]:
            run(s, statement)
        data = os.path.join(directory, "data")
        for name in sorted(os.listdir(data)):
            path = os.path.join(data, name)
            if os.path.getsize(path) == 0:
                continue
            table = name[: -len(".jsonl")]
            run(s, f"INSERT INTO {table} FROM INFILE '{path}' FORMAT JSONEachRow")
        queries = os.path.join(directory, "queries")
        results = os.path.join(directory, "results")
        os.makedirs(results, exist_ok=True)
        for name in sorted(os.listdir(queries)):
            sql = open(os.path.join(queries, name)).read()
            answer = run(s, sql, "JSONCompact")
            with open(os.path.join(results, name[: -len(".sql")] + ".json"), "wb") as f:
                f.write(answer)


def run(s, sql, fmt="CSV"):
    try:
        return s.query(sql, fmt).bytes()
    except Exception as e:  # noqa: BLE001 - any engine error fails the check
        print(f"current ClickHouse refused:\n{sql}\n--> {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
