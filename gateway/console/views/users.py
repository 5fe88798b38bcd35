"""User management: add users, set passwords, roles and certificates, disable and enable.

The same store functions as ``imi-gateway users`` (``storage.console_accounts``);
every change is audited (CONSOLE_CHANGE) in its transaction and ends the
user's sessions when it changes how they log in or what they may do.
"""

from __future__ import annotations

from pathlib import Path

from gateway.console.registry import (
    OPERATOR,
    ROLES,
    ConsoleInputInvalid,
    Context,
    Page,
    Redirect,
    action,
    page,
)
from gateway.console.security import check_password_rules, hash_password
from gateway.core import certs
from gateway.storage.console_accounts import add_user_txn, update_user_txn, users_txn
from gateway.storage.coordinators import CoordinatorNotRegistered, CoordinatorRegistry

USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")


def check_username(name: str) -> str:
    name = name.strip().lower()
    if not (1 <= len(name) <= 64) or not set(name) <= USERNAME_CHARS:
        raise ConsoleInputInvalid("username: 1-64 of a-z 0-9 . _ - @")
    return name


def check_fingerprint(value: str) -> str | None:
    if not value.strip():
        return None
    try:
        return certs.normalise_fingerprint(value)
    except ValueError:
        raise ConsoleInputInvalid(
            "cert_fingerprint: a SHA-256 fingerprint (64 hex digits)"
        ) from None


def check_coordinator(node_dir: Path, coordinator_id: str) -> str:
    """``coordinator_id`` if a coordinator of that id is registered at the node, else
    COORDINATOR_NOT_REGISTERED (``imi-gateway coordinators add`` registers one)."""
    if CoordinatorRegistry(node_dir).get(coordinator_id) is None:
        raise CoordinatorNotRegistered(
            f"coordinator_id: no coordinator {coordinator_id} is registered at this node"
        )
    return coordinator_id


@page("users", roles=OPERATOR, nav="nav.users", order=95)
async def users(ctx: Context) -> Page:
    return Page("users.html", {"users": await ctx.deps.db.run_txn(users_txn), "roles": ROLES})


@action("users/add", roles=OPERATOR)
async def add(ctx: Context) -> Redirect:
    username = check_username(ctx.required("username"))
    role = ctx.required("role")
    if role not in ROLES:
        raise ConsoleInputInvalid("role: operator, coordinator or auditor")
    coordinator = ctx.arg("coordinator_id") or None
    if role == "coordinator" and not coordinator:
        raise ConsoleInputInvalid("coordinator_id: required for a coordinator")
    if role == "coordinator" and coordinator:
        await ctx.deps.run(check_coordinator, ctx.deps.node_dir, coordinator)
    password = ctx.arg("password")
    fingerprint = check_fingerprint(ctx.arg("cert_fingerprint"))
    if not password and not fingerprint:
        raise ConsoleInputInvalid("password: give a password or a certificate fingerprint")
    if password:
        check_password_rules(username, password)
    hashed = await ctx.deps.run(hash_password, password) if password else None
    await ctx.deps.db.run_txn(
        add_user_txn,
        username=username,
        role=role,
        password_hash=hashed,
        now=ctx.now,
        actor=ctx.actor,
        coordinator_id=coordinator if role == "coordinator" else None,
        cert_fingerprint=fingerprint,
    )
    return Redirect("/users", "flash.user_saved")


@action("users/password", roles=OPERATOR)
async def set_password(ctx: Context) -> Redirect:
    username = ctx.required("username")
    password = ctx.required("password")
    check_password_rules(username, password)
    hashed = await ctx.deps.run(hash_password, password)
    await ctx.deps.db.run_txn(
        update_user_txn,
        username,
        now=ctx.now,
        actor=ctx.actor,
        what="password",
        values={"password_hash": hashed},
    )
    return Redirect("/users", "flash.user_saved")


@action("users/disable", roles=OPERATOR)
async def disable(ctx: Context) -> Redirect:
    username = ctx.required("username")
    if username == ctx.user.username:
        raise ConsoleInputInvalid("username: you cannot disable yourself")
    await ctx.deps.db.run_txn(
        update_user_txn,
        username,
        now=ctx.now,
        actor=ctx.actor,
        what="disabled",
        values={"disabled_at": ctx.now},
    )
    return Redirect("/users", "flash.user_saved")


@action("users/enable", roles=OPERATOR)
async def enable(ctx: Context) -> Redirect:
    username = ctx.required("username")
    await ctx.deps.db.run_txn(
        update_user_txn,
        username,
        now=ctx.now,
        actor=ctx.actor,
        what="enabled",
        values={"disabled_at": None},
    )
    return Redirect("/users", "flash.user_saved")
