"""Smoke test for the throwaway PostgreSQL cluster helper (tests/pgcluster.py).

Skipped when the PostgreSQL server binaries are not installed, unless
``ORDERLY_REQUIRE_POSTGRES=1`` is set (e.g. in CI), in which case it fails.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from tests.pgcluster import BINDIR_ENV, PgCluster, find_pg_bindir


def _require_bindir():
    bindir = find_pg_bindir()
    if bindir is None:
        msg = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found via "
            f"${BINDIR_ENV} or `pg_config --bindir`"
        )
        if os.environ.get("ORDERLY_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{msg}, but ORDERLY_REQUIRE_POSTGRES=1 requires them")
        pytest.skip(msg)
    return bindir


def test_cluster_lifecycle_roundtrip():
    bindir = _require_bindir()
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        port = cluster.port
        tmpdir = cluster.tmpdir
        assert cluster.url("t_smoke") == f"postgresql+psycopg://postgres@127.0.0.1:{port}/t_smoke"

        assert cluster.create_database("t_smoke") == "t_smoke"
        conn = psycopg.connect(cluster.conninfo("t_smoke"), connect_timeout=10)
        try:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table items (id int primary key, name text not null)")
            conn.execute(
                "insert into items (id, name) values (%s, %s), (%s, %s)",
                (1, "apple", 2, "pear"),
            )
            conn.commit()
            rows = conn.execute("select id, name from items order by id").fetchall()
            assert rows == [(1, "apple"), (2, "pear")]
            conn.commit()
            # The session is still open: drop_database must terminate it and succeed.
            cluster.drop_database("t_smoke")
        finally:
            conn.close()

        with psycopg.connect(cluster.conninfo("postgres"), connect_timeout=10) as conn:
            row = conn.execute("select count(*) from pg_database where datname = 't_smoke'")
            assert row.fetchone() == (0,)

        with pytest.raises(ValueError, match="unsafe database name"):
            cluster.create_database('x"; drop database postgres; --')
    finally:
        cluster.stop()

    assert not cluster.running
    assert not tmpdir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=3
        )
    cluster.stop()  # second stop is a no-op
