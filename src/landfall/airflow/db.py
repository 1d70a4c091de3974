"""Connection arguments for Airflow's metadata database, named in airflow.cfg by import path.

SQLite allows one writer at a time and its driver gives up after 5 s by default; an `airflow` CLI
call that writes (a backfill clearing runs) while the scheduler writes then fails with "database is
locked". Waiting up to 30 s turns that into a short pause. PostgreSQL needs no such thing; it gets a
connect timeout instead (the SQLite key would be an invalid option there).
"""

SQLITE_CONNECT_ARGS: dict[str, object] = {"timeout": 30}
POSTGRES_CONNECT_ARGS: dict[str, object] = {"connect_timeout": 10}
