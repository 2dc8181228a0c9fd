"""The ``paddock`` command: the evaluator's commands plus the league's operator commands.

``db upgrade``, ``user create``, ``token create``, ``scheduler`` and ``worker`` read their
settings from the environment (:class:`league.config.Settings`). Every failure prints one line
``paddock: error: ...`` on stderr and exits non-zero, database failures included.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.orm import Session

from evaluator import cli as evaluator_cli
from evaluator.errors import PaddockError
from league.config import ConfigError, Settings, configure_logging
from league.db import make_engine, session_factory, transaction, upgrade_database
from league.errors import InvalidInput, LeagueError
from league.models import Role, TokenScope
from league.processes import launcher, worker
from league.rules import accounts

EXIT_FAILURE = 1  # the command ran and failed (database down, name taken, ...)
EXIT_USAGE = 2  # bad flags or input
DEFAULT_TOKEN_LABEL = "cli"


def _fail(message: str, status: int = EXIT_FAILURE) -> int:
    print(f"paddock: error: {message}", file=sys.stderr)
    return status


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """One transaction on the configured database."""
    engine = make_engine(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Bring the database schema up to date."""
    settings = Settings.from_env()
    configure_logging()
    revision = upgrade_database(settings.database_url, args.revision)
    print(f"database at revision {revision or 'base'} "
          f"({sa.make_url(settings.database_url).render_as_string()})")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput("give the password on standard input with --password-stdin")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise InvalidInput("the passwords differ")
    return password


def cmd_user_create(args: argparse.Namespace) -> int:
    """Create an account."""
    password = _read_password(args)
    with _session(Settings.from_env()) as session:
        user = accounts.create_user(session, args.name, args.email, password, args.role)
        name, role, ident = user.name, user.role, user.id
    print(f"created {role} {name} (id {ident})")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    """Create a personal API token for a user and print it, once."""
    with _session(Settings.from_env()) as session:
        user = accounts.get_user(session, args.name)
        token, plain = accounts.create_token(session, user, args.label, scope=args.scope,
                                             lifetime=args.expires)
        label, owner = token.name, user.name
        expiry = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "never expires"
    # Printed only once the token is committed; alone on stdout so scripts can capture it.
    print(plain)
    print(f"token {label!r} for {owner} ({args.scope}, {expiry}): shown only this once, keep "
          "it safe", file=sys.stderr)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run the scheduler until SIGTERM or SIGINT."""
    from league.processes import scheduler

    settings = Settings.from_env()
    configure_logging()
    scheduler.run(settings)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the local evaluation workers (:mod:`league.processes.worker`) until SIGTERM or SIGINT."""
    Settings.from_env()  # a bad setting fails here, with the one-line error of every command
    status: int = worker.cmd_worker(args)
    return status


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operator commands to the ``paddock`` command's subcommands."""
    db = sub.add_parser("db", help="database schema (migrations)")
    dsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = dsub.add_parser("upgrade", help="apply the migrations (DATABASE_URL)")
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    p.set_defaults(func=cmd_db_upgrade)

    user = sub.add_parser("user", help="manage accounts")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    p = usub.add_parser("create", help="create an account")
    p.add_argument("name", help="user name (2-40 letters, digits, '.', '_', '-')")
    p.add_argument("--email", required=True, help="e-mail address")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.add_argument("--role", choices=[r.value for r in Role], default=Role.RACER.value,
                   help="site role (default: racer)")
    p.set_defaults(func=cmd_user_create)

    token = sub.add_parser("token", help="manage personal API tokens")
    tsub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    p = tsub.add_parser("create", help="create a token for a user and print it once")
    p.add_argument("name", help="the user's name")
    p.add_argument("--label", default=DEFAULT_TOKEN_LABEL,
                   help=f"the token's name, to tell tokens apart (default: {DEFAULT_TOKEN_LABEL})")
    p.add_argument("--scope", choices=[s.value for s in TokenScope],
                   default=TokenScope.SUBMIT.value,
                   help="read: reading only; submit: also uploads and organizing (default)")
    p.add_argument("--expires", choices=list(accounts.TOKEN_LIFETIMES),
                   default=accounts.DEFAULT_TOKEN_LIFETIME,
                   help=f"how long the token works (default: {accounts.DEFAULT_TOKEN_LIFETIME})")
    p.set_defaults(func=cmd_token_create)

    p = sub.add_parser("scheduler", help="run the scheduler process")
    p.set_defaults(func=cmd_scheduler)
    p = sub.add_parser("worker", help="run the local evaluation workers")
    worker.add_arguments(p)
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("demo", help="migrate, seed the demo league and run the website, the "
                       "scheduler and workers as one process tree (make run)")
    launcher.add_arguments(p)
    p.set_defaults(func=launcher.cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``paddock`` command: the evaluator's parser with the operator commands."""
    parser = evaluator_cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            add_parsers(action)
            return parser
    raise RuntimeError("evaluator.cli.build_parser() has no subcommands")


def _database_message(err: sa.exc.SQLAlchemyError) -> str:
    """One line about a database failure, with a hint when the schema is missing."""
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        line += " (is the database migrated? run 'paddock db upgrade')"
    return f"database error: {line}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``paddock`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    try:
        status: int = args.func(args)
    except (InvalidInput, ConfigError, PaddockError) as err:
        return _fail(str(err), EXIT_USAGE)
    except LeagueError as err:
        return _fail(str(err))
    except CommandError as err:
        return _fail(f"migration failed: {err}")
    except sa.exc.ArgumentError as err:
        return _fail(f"bad database URL (DATABASE_URL): {err}", EXIT_USAGE)
    except sa.exc.SQLAlchemyError as err:
        return _fail(_database_message(err))
    except OSError as err:
        return _fail(f"{err.filename or ''}: {err.strerror}".lstrip(": "))
    return status


if __name__ == "__main__":
    sys.exit(main())
