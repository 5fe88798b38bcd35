"""``imi-gateway users``: the admin console's accounts (add, list, set-password, disable).

Works on the node's database directly, while the node runs or not (sessions
live in the database, so a disabled user is logged out at once). Passwords
come from a prompt or ``--password-file`` (its first line), never from the
command line, where other users of the machine could read them. Every change
is recorded in the audit log (CONSOLE_CHANGE, actor ``operator``). The
console's login is described in docs/console.md.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.commands import usage_when_no_subcommand
from gateway.commands.queue import _database
from gateway.commands.reload import notify_running_node
from gateway.console.registry import ROLES
from gateway.console.security import check_password_rules, hash_password
from gateway.console.signing import issue_console_key
from gateway.console.views.users import check_coordinator, check_fingerprint, check_username
from gateway.core.audit import OPERATOR_ACTOR
from gateway.core.errors import InvalidInput
from gateway.storage.console_accounts import add_user_txn, update_user_txn, users_txn


class PasswordsDiffer(InvalidInput):
    """The two passwords typed at the prompt differ."""

    code = "CONSOLE_PASSWORDS_DIFFER"


def _password(args: argparse.Namespace, username: str, *, required: bool) -> str | None:
    if args.password_file:
        text = Path(args.password_file).read_text(encoding="utf-8")
        password = text.splitlines()[0] if text else ""
    elif args.no_password:
        return None
    elif not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {username}: ")
        if getpass.getpass("Again: ") != password:
            raise PasswordsDiffer("password: the two entries differ")
    if not password and not required:
        return None
    check_password_rules(username, password)
    return password


def _add(args: argparse.Namespace) -> int:
    username = check_username(args.username)
    if args.role == "coordinator" and not args.coordinator:
        args.parser.error("a coordinator needs --coordinator ID (its scope)")
    if args.console_key and args.role != "coordinator":
        args.parser.error("--console-key is for coordinators")
    if args.role == "coordinator":
        check_coordinator(Path(args.node_dir), args.coordinator)
    fingerprint = check_fingerprint(args.cert_fingerprint or "")
    password = _password(args, username, required=fingerprint is None)
    db, _ = _database(args.node_dir)
    try:
        db.run_txn_sync(
            add_user_txn,
            username=username,
            role=args.role,
            password_hash=hash_password(password) if password else None,
            now=datetime.now(UTC),
            actor=OPERATOR_ACTOR,
            coordinator_id=args.coordinator if args.role == "coordinator" else None,
            cert_fingerprint=fingerprint,
        )
    finally:
        db.stop()
    print(f"Added console user {username} ({args.role}).")
    if args.console_key:
        key = issue_console_key(args.node_dir, username, args.coordinator)
        print(
            f"Issued the console key of {username} for coordinator {key.coordinator_id}: "
            f"the console signs this user's coordinator documents with it "
            f"(sha256 {key.fingerprint}; revoke it alone with: imi-gateway keys revoke "
            f"NODE_DIR {key.fingerprint})."
        )
        notify_running_node(args.node_dir)
    return 0


def _list(args: argparse.Namespace) -> int:
    db, _ = _database(args.node_dir)
    try:
        users = db.run_txn_sync(users_txn)
    finally:
        db.stop()
    if not users:
        print("no console users (add the first operator with: imi-gateway users add NODE_DIR NAME)")
    for u in users:
        login = "+".join(
            m
            for m, on in (("password", u.password_hash), ("certificate", u.cert_fingerprint))
            if on
        )
        status = "active" if u.active else "disabled"
        scope = f"  scope {u.coordinator_id}" if u.coordinator_id else ""
        print(f"{u.username:24} {u.role:12} {status:9} {login}{scope}")
    return 0


def _set_password(args: argparse.Namespace) -> int:
    password = _password(args, args.username, required=True)
    assert password is not None
    db, _ = _database(args.node_dir)
    try:
        db.run_txn_sync(
            update_user_txn,
            args.username,
            now=datetime.now(UTC),
            actor=OPERATOR_ACTOR,
            what="password",
            values={"password_hash": hash_password(password), "disabled_at": None},
        )
    finally:
        db.stop()
    print(f"Set the password of {args.username} (its sessions are ended).")
    return 0


def _disable(args: argparse.Namespace) -> int:
    db, _ = _database(args.node_dir)
    now = datetime.now(UTC)
    try:
        db.run_txn_sync(
            update_user_txn,
            args.username,
            now=now,
            actor=OPERATOR_ACTOR,
            what="disabled",
            values={"disabled_at": now},
        )
    finally:
        db.stop()
    print(f"Disabled {args.username} (its sessions are ended).")
    return 0


def _password_options(parser: argparse.ArgumentParser, *, optional: bool) -> None:
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from the first line of FILE (default: a prompt, or standard input)",
    )
    if optional:
        parser.add_argument(
            "--no-password",
            action="store_true",
            help="no password: the user logs in with its client certificate only",
        )
    else:
        parser.set_defaults(no_password=False)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "users",
        help="admin console accounts: add, list, set-password, disable",
        description=(
            "Manage the admin console's accounts (docs/console.md). Roles: operator (runs the "
            "node), coordinator (coordinator pages, bound to a coordinator id), auditor "
            "(read-only). Passwords come from a prompt or --password-file, never the command line. "
            "Exit status 0 on success, 1 for refused input (COORDINATOR_NOT_REGISTERED: the "
            "coordinator id is not registered), 2 for a usage error."
        ),
    )
    sub = parser.add_subparsers(metavar="COMMAND")
    parser.set_defaults(func=usage_when_no_subcommand(parser))

    add = sub.add_parser(
        "add", help="add a user (e.g. the first operator)", description="Add a console user."
    )
    add.add_argument("node_dir", metavar="NODE_DIR")
    add.add_argument("username", metavar="NAME", help="1-64 of a-z 0-9 . _ - @")
    add.add_argument("--role", choices=ROLES, default="operator", help="default: operator")
    add.add_argument(
        "--coordinator", metavar="ID", help="the coordinator id (scope) of a coordinator"
    )
    add.add_argument(
        "--console-key",
        action="store_true",
        help=(
            "coordinators: issue a coordinator certificate whose key the node keeps, so that "
            "the console signs this user's coordinator documents (docs/console.md); without "
            "it the coordinator signs with its own key and uploads the document"
        ),
    )
    add.add_argument(
        "--cert-fingerprint",
        metavar="SHA256",
        help="a client certificate (of the node CA) that may log in as this user",
    )
    _password_options(add, optional=True)
    add.set_defaults(func=_add, parser=add)

    listing = sub.add_parser(
        "list", help="list users (never a password hash)", description="List console users."
    )
    listing.add_argument("node_dir", metavar="NODE_DIR")
    listing.set_defaults(func=_list)

    setpw = sub.add_parser(
        "set-password",
        help="set a user's password (and enable it)",
        description="Set a console user's password; ends its sessions and enables a disabled user.",
    )
    setpw.add_argument("node_dir", metavar="NODE_DIR")
    setpw.add_argument("username", metavar="NAME")
    _password_options(setpw, optional=False)
    setpw.set_defaults(func=_set_password)

    disable = sub.add_parser(
        "disable", help="disable a user (ends its sessions)", description="Disable a console user."
    )
    disable.add_argument("node_dir", metavar="NODE_DIR")
    disable.add_argument("username", metavar="NAME")
    disable.set_defaults(func=_disable)
