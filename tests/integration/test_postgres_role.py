"""The scale-out profile's PostgreSQL role, against the machine's real PostgreSQL: the launcher's start-up
step that creates the stack's databases makes them owned by the stack's own login role (not a superuser,
generated password) and closes them to every other role. The machine's server trusts local connections
(pg_hba), so what is checked is the role's SCRAM secret, not a refused login. Throw-away databases and
role per test, dropped at the end."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
import uuid

import psycopg2
import pytest

from journeys import POSTGRES, ensure_service
from landfall.core.settings import load_settings
from landfall.ops.stack import accounts, postgres_role, provision
from landfall.ops.stack.components import Context
from landfall.ops.stack.state import StackState

ADMIN = "postgresql://postgres@127.0.0.1:5432"


def _admin(statement: str, database: str = "postgres", params: tuple = ()) -> list[tuple]:
    connection = psycopg2.connect(f"{ADMIN}/{database}")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


@pytest.fixture
def ctx(monkeypatch, tmp_path):
    ensure_service(POSTGRES)
    run = uuid.uuid4().hex[:8]
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LANDFALL_STACK__PROFILE", "scaleout")
    monkeypatch.setenv("LANDFALL_STACK__SCALEOUT__AIRFLOW_DATABASE", f"landfall_r{run}_airflow")
    monkeypatch.setenv("LANDFALL_STACK__SCALEOUT__MLFLOW_DATABASE", f"landfall_r{run}_mlflow")
    settings = load_settings()
    context = Context(settings, StackState(settings))
    yield context
    for database in (context.scaleout.airflow_database, context.scaleout.mlflow_database):
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    postgres_role.remove_role(context)
    assert not _admin("SELECT 1 FROM pg_roles WHERE rolname = %s", params=(accounts.project_name(context),))


def _verifies(secret: str, password: str) -> bool:
    """Whether PostgreSQL's stored SCRAM-SHA-256 secret is the one of this password (RFC 5802)."""
    method, _, rest = secret.partition("$")
    iterations_and_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_and_salt.partition(":")
    stored_key = keys.partition(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def _stored_secret(role: str) -> str:
    [(secret,)] = _admin("SELECT rolpassword FROM pg_authid WHERE rolname = %s", params=(role,))
    return secret


def _as_role(ctx, database: str, statement: str) -> list[tuple]:
    """Run as the stack's processes do: the role's URL, the password from the stack's PGPASSFILE."""
    url = postgres_role.database_url(ctx, database)
    connection = psycopg2.connect(url, passfile=str(postgres_role.pgpass_file(ctx)))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def test_the_stack_databases_are_owned_by_its_own_role_which_is_no_superuser(ctx):
    provision.create_databases(ctx, echo=lambda _line: None)
    role = accounts.project_name(ctx)
    [(superuser, create_db, create_role, login)] = _admin(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
        params=(role,),
    )
    assert (superuser, create_db, create_role, login) == (False, False, False, True)
    owners = _admin(
        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN (%s, %s)",
        params=(ctx.scaleout.airflow_database, ctx.scaleout.mlflow_database),
    )
    assert {owner for _, owner in owners} == {role} and len(owners) == 2
    _as_role(ctx, ctx.scaleout.airflow_database, "CREATE TABLE probe (id serial PRIMARY KEY)")
    assert _as_role(ctx, ctx.scaleout.airflow_database, "SELECT current_user") == [(role,)]


def test_the_roles_password_is_the_generated_one_and_reaches_libpq_only_through_the_private_passfile(ctx):
    provision.create_databases(ctx, echo=lambda _line: None)
    role, password = accounts.project_name(ctx), ctx.state.secrets().postgres_password
    assert _verifies(_stored_secret(role), password)
    assert not _verifies(_stored_secret(role), "a-guess")
    passfile = postgres_role.pgpass_file(ctx)
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert passfile.read_text() == f"127.0.0.1:5432:*:{role}:{password}\n"
    assert password not in postgres_role.database_url(ctx, ctx.scaleout.airflow_database, driver=True)


def test_no_other_role_may_connect_to_the_stack_databases(ctx):
    provision.create_databases(ctx, echo=lambda _line: None)
    other = f"landfall_other_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE ROLE "{other}" LOGIN')
    try:
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            psycopg2.connect(f"postgresql://{other}@127.0.0.1:5432/{ctx.scaleout.mlflow_database}").close()
        psycopg2.connect(f"postgresql://{other}@127.0.0.1:5432/postgres").close()  # the role itself works
    finally:
        _admin(f'DROP ROLE "{other}"')


def test_a_restart_keeps_the_data_and_a_lost_secrets_file_resets_the_password(ctx):
    provision.create_databases(ctx, echo=lambda _line: None)
    role, old = accounts.project_name(ctx), ctx.state.secrets().postgres_password
    _as_role(ctx, ctx.scaleout.airflow_database, "CREATE TABLE kept (id int)")
    provision.create_databases(ctx, echo=lambda _line: None)
    assert _verifies(_stored_secret(role), old)
    ctx.state.secrets_file.unlink()
    provision.create_databases(ctx, echo=lambda _line: None)
    new = ctx.state.secrets().postgres_password
    assert new != old and _verifies(_stored_secret(role), new) and not _verifies(_stored_secret(role), old)
    assert new in postgres_role.pgpass_file(ctx).read_text()
    assert _as_role(ctx, ctx.scaleout.airflow_database, "SELECT count(*) FROM kept") == [(0,)]


def test_databases_an_older_launcher_made_as_the_superuser_are_handed_over_to_the_role(ctx):
    database = ctx.scaleout.airflow_database
    _admin(f'CREATE DATABASE "{database}"')
    _admin("CREATE TYPE state AS ENUM ('queued', 'done')", database)
    _admin("CREATE TABLE run (id serial PRIMARY KEY, state state)", database)
    _admin("CREATE SEQUENCE loose_seq", database)
    _admin("CREATE VIEW runs AS SELECT id FROM run", database)
    provision.create_databases(ctx, echo=lambda _line: None)
    role = accounts.project_name(ctx)
    owners = _admin(
        """SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v')
           UNION ALL SELECT typname, pg_get_userbyid(typowner) FROM pg_type WHERE typname = 'state'""",
        database,
    )
    assert dict(owners) == dict.fromkeys(["run", "run_id_seq", "loose_seq", "runs", "state"], role)
    _as_role(ctx, database, "ALTER TABLE run ADD COLUMN note text")  # what a migration does
    _as_role(ctx, database, "INSERT INTO run (state) VALUES ('done')")
    assert _as_role(ctx, database, "SELECT count(*) FROM runs") == [(1,)]
