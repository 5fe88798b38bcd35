"""The user's own account: interface language (English or Norwegian Bokmål)."""

from __future__ import annotations

from gateway.console.registry import ALL, ConsoleInputInvalid, Context, Page, Redirect, action, page
from gateway.console.translate import LANGUAGES
from gateway.storage.console_accounts import set_language_txn


@page("account", roles=ALL)
async def account(ctx: Context) -> Page:
    return Page("account.html", {})


@action("account/language", roles=ALL)
async def language(ctx: Context) -> Redirect:
    lang = ctx.required("lang")
    if lang not in LANGUAGES:
        raise ConsoleInputInvalid(f"lang: one of {', '.join(LANGUAGES)}")
    await ctx.deps.db.run_txn(set_language_txn, ctx.user.username, lang)
    return Redirect(
        ctx.arg("back")
        if ctx.arg("back").startswith("/") and not ctx.arg("back").startswith("//")
        else "/account"
    )
