"""The scale-out profile's PostgreSQL account: a login role, not a superuser, that owns the databases the
launcher creates (and what an older launcher made in them as the superuser); nobody else may connect to
them. Only where the launcher administers the server: a local URL without a password (the default).

The role is `landfall_<id>` (see `accounts`); its generated password is sent to the server as a SCRAM
secret only, and reaches libpq through the stack's private PGPASSFILE, never through a URL, a command line
or supervisord's config. Every `landfall up` sets it again: a lost secrets file resets it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from landfall.ops.stack.accounts import administered, project_name
from landfall.ops.stack.components import Context, StackError


def managed(ctx: Context) -> bool:
    """The scale-out profile on a local server named without a password: the launcher administers it."""
    return ctx.scaleout is not None and administered(ctx.scaleout.postgres_url, user_of_its_own=True)


def database_url(ctx: Context, database: str, driver: bool = False) -> str:
    """The URL the stack's processes use: the project's role (its password comes from PGPASSFILE)."""
    scaleout = ctx.scaleout
    url = scaleout.sqlalchemy_url(database) if driver else scaleout.database_url(database)
    if not managed(ctx):
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{project_name(ctx)}@{parts.netloc.rpartition('@')[2]}"))


def pgpass_file(ctx: Context) -> Path:
    """libpq's password file for the stack's processes (PGPASSFILE in their environment)."""
    return ctx.state.root / "pgpass"


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 secret for a password: the server never receives the password itself."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def ensure_role(ctx: Context, cursor: Any) -> str:
    """Create the project's login role (or reset its password) and write the PGPASSFILE line for it."""
    import psycopg2
    from psycopg2 import sql

    role, password = project_name(ctx), ctx.state.secrets().postgres_password
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    verb = sql.SQL("ALTER" if cursor.fetchone() else "CREATE")
    statement = sql.SQL("{} ROLE {} LOGIN PASSWORD {}")
    try:
        cursor.execute(statement.format(verb, sql.Identifier(role), sql.Literal(scram_verifier(password))))
    except psycopg2.errors.InsufficientPrivilege as error:
        raise StackError(
            f"the stack's own PostgreSQL role could not be made ({str(error).strip()}): name a user that may "
            "create roles and databases in LANDFALL_STACK__SCALEOUT__POSTGRES_URL, or give a password there "
            "to run as that user"
        ) from None
    parts = urlsplit(ctx.scaleout.postgres_url)
    fields = [parts.hostname or "", str(parts.port or 5432), "*", role, password]
    line = ":".join(field.replace("\\", "\\\\").replace(":", "\\:") for field in fields)
    ctx.state.write_private(pgpass_file(ctx), line + "\n")
    return role


# Objects a database created by an older launcher (as the superuser) holds: tables, views and their
# sequences first, then the sequences and types left (a column's sequence moves with its table).
_HAND_OVER = (
    """SELECT format('ALTER %%s %%s OWNER TO %%I', CASE c.relkind WHEN 'v' THEN 'VIEW'
         WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass,
         %(role)s)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%%'
         AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relowner <> %(role)s::regrole""",
    """SELECT format('ALTER SEQUENCE %%s OWNER TO %%I', c.oid::regclass, %(role)s)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%%'
         AND c.relkind = 'S' AND c.relowner <> %(role)s::regrole""",
    """SELECT format('ALTER %%s %%s OWNER TO %%I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
         t.oid::regtype, %(role)s)
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%%'
         AND t.typtype IN ('e', 'd', 'r') AND t.typowner <> %(role)s::regrole""",
)


def hand_over_database(ctx: Context, cursor: Any, database: str, role: str) -> None:
    """The role owns the database (and what an older launcher made in it); nobody else connects to it."""
    import psycopg2
    from psycopg2 import sql

    cursor.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,))
    if cursor.fetchone()[0] != role:
        cursor.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(role))
        )
        connection = psycopg2.connect(ctx.scaleout.database_url(database), connect_timeout=5)
        try:
            with connection, connection.cursor() as inside:  # one transaction: all of it or nothing
                for query in _HAND_OVER:
                    inside.execute(query, {"role": role})
                    for (statement,) in inside.fetchall():
                        inside.execute(statement)
        finally:
            connection.close()
    cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))


def remove_role(ctx: Context) -> None:
    """A throw-away stack's role, once its databases are dropped."""
    if managed(ctx):
        import psycopg2
        from psycopg2 import sql

        connection = psycopg2.connect(ctx.scaleout.database_url("postgres"), connect_timeout=5)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(project_name(ctx))))
        finally:
            connection.close()
