"""``imi-gateway authorities``: the node's authority directory and the multilingual search.

Sub-commands: ``add``, ``update``, ``remove``, ``list``, ``show``, ``export``
(the node-signed directory document, full or ``--since N``), ``import`` (a
peer's signed directory, for operators without network sync), ``search``
(this node's and the cached peers' directories) and ``demo`` (generated
authorities with certificates, for demonstrations). The work is done by
:mod:`gateway.storage.directory_files` and :mod:`gateway.core.directory`; this module
parses arguments and prints results. Refusals are GatewayErrors with stable
codes (exit status 1 for refused input, 3 for configuration problems).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway import config as config_mod
from gateway import keystore
from gateway.commands import usage_when_no_subcommand
from gateway.commands._audit import record_change
from gateway.commands._authority_options import (
    authority_options,
    build_competences,
    count_arg,
    version_arg,
    working_languages,
)
from gateway.commands.reload import notify_running_node
from gateway.core import directory as rules
from gateway.core.audit import Event
from gateway.core.directory.document import Address, AuthorityEntry, build_directory
from gateway.core.directory.jsonform import entry_to_json
from gateway.core.search import SearchQuery
from gateway.core.search.jsonform import search_result_json
from gateway.core.signing import Signer
from gateway.service.directory_search import LiveSearch
from gateway.storage.directory_files import DirectoryStore

#: Environment variable naming the node directory ``authorities search`` uses by default.
NODE_DIR_ENV = "IMI_GATEWAY_NODE_DIR"


def _now() -> datetime:
    return datetime.now(UTC)


def _add(args: argparse.Namespace) -> int:
    store = DirectoryStore(args.node_dir)
    config = config_mod.load_config(args.node_dir)
    if not args.city:
        raise rules.AuthorityFieldInvalid("--city is required")
    if not args.address:
        raise rules.AuthorityFieldInvalid("give at least one --address line")
    entry = AuthorityEntry(
        authority_id=args.authority_id,
        names=tuple(args.name),
        address=Address(
            tuple(args.address), args.city, args.authority_id[:2], postal_code=args.postal_code
        ),
        region=args.region,
        competences=build_competences(
            store.catalogue, args.area or [], args.question_set or [], args.profession or []
        ),
        working_languages=tuple(working_languages(args.language) or config.node.languages),
        certificates=(),
    )
    published = store.add(entry, now=_now())
    print(f"Registered {entry.authority_id}; directory version {published.version}.")
    record_change(args.node_dir, Event.AUTHORITIES_CHANGED, entry.authority_id)
    notify_running_node(args.node_dir)
    return 0


def _update(args: argparse.Namespace) -> int:
    store = DirectoryStore(args.node_dir)
    competence_given = bool(args.area or args.question_set or args.profession)
    competences = (
        build_competences(
            store.catalogue, args.area or [], args.question_set or [], args.profession or []
        )
        if competence_given
        else None
    )

    def edit(current: AuthorityEntry) -> AuthorityEntry:
        names = {n.lang: n for n in current.names}
        for lang in args.remove_name or []:
            if names.pop(lang, None) is None:
                raise rules.AuthorityFieldInvalid(f"the authority has no name in {lang!r}")
        for name in args.name or []:
            names[name.lang] = name
        address = current.address
        if args.address:
            address = dataclasses.replace(address, lines=tuple(args.address))
        if args.city:
            address = dataclasses.replace(address, city=args.city)
        if args.postal_code is not None or args.no_postal_code:
            address = dataclasses.replace(address, postal_code=args.postal_code)
        region = current.region
        if args.region is not None or args.no_region:
            region = args.region
        languages = working_languages(args.language)
        return dataclasses.replace(
            current,
            names=tuple(names.values()),
            address=address,
            region=region,
            competences=competences if competences is not None else current.competences,
            working_languages=tuple(languages) if languages else current.working_languages,
        )

    published = store.update(args.authority_id, edit, now=_now())
    print(f"Updated {args.authority_id}; directory version {published.version}.")
    record_change(args.node_dir, Event.AUTHORITIES_CHANGED, args.authority_id)
    notify_running_node(args.node_dir)
    return 0


def _remove(args: argparse.Namespace) -> int:
    store = DirectoryStore(args.node_dir)
    published = store.remove(args.authority_id, now=_now())
    print(
        f"Removed {args.authority_id}; directory version {published.version} "
        "(peers drop it at their next synchronisation)."
    )
    record_change(args.node_dir, Event.AUTHORITIES_CHANGED, args.authority_id)
    notify_running_node(args.node_dir)
    return 0


def _summary(entry: AuthorityEntry) -> str:
    parts = []
    for competence in entry.competences:
        narrowed = [*competence.professions, *competence.question_sets]
        parts.append(
            f"{competence.legislation_area}({', '.join(narrowed)})"
            if narrowed
            else f"{competence.legislation_area}(all)"
        )
    return " ".join(parts)


def _list(args: argparse.Namespace) -> int:
    store = DirectoryStore(args.node_dir)
    records = store.records()
    published = store.published()
    if args.json:
        document = {
            "node_id": store.node_id,
            "version": published.version,
            "created": published.created.isoformat() if published.created else None,
            "authorities": [
                {
                    **entry_to_json(entry, certificates=False),
                    "published": authority_id in published.entries,
                }
                for authority_id, entry in records.items()
            ],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    created = f", published {published.created:%Y-%m-%d %H:%M:%S}Z" if published.created else ""
    print(
        f"node {store.node_id}: {len(records)} authorities, directory version "
        f"{published.version}{created}"
    )
    for authority_id, entry in records.items():
        state = (
            "" if authority_id in published.entries else "  [NOT PUBLISHED: no valid certificate]"
        )
        region = f" {entry.region}" if entry.region else ""
        print(f"  {authority_id:<24} {entry.names[0].text}  [{entry.address.city}{region}]")
        print(f"  {'':<24} {_summary(entry)}  languages {','.join(entry.working_languages)}{state}")
    unpublished = store.unpublished()
    if unpublished:
        print(
            f"warning: {len(unpublished)} authorities have no valid national-system "
            "certificate and are not published (imi-gateway keys issue-national)",
            file=sys.stderr,
        )
    return 0


def _find(store: DirectoryStore, authority_id: str) -> tuple[str, AuthorityEntry, bool]:
    """(node id, entry, is this node's) of ``authority_id`` among own and cached peers."""
    rules.check_authority_id(authority_id)
    if authority_id[:2] == store.node_id:
        published = store.published().entries.get(authority_id)
        return store.node_id, published or store.record(authority_id), True
    cached = store.cached(authority_id[:2])
    entry = cached.entries.get(authority_id) if cached is not None else None
    if entry is None:
        raise rules.AuthorityUnknown(
            f"authority {authority_id} is not in the cached directory of {authority_id[:2]}"
        )
    return authority_id[:2], entry, False


def _show(args: argparse.Namespace) -> int:
    store = DirectoryStore(args.node_dir)
    node_id, entry, own = _find(store, args.authority_id)
    certificates = rules.entry_certificates(entry)
    if args.json:
        document = entry_to_json(entry, certificates=False)
        document["node_id"] = node_id
        document["certificates"] = [
            {
                "sha256": keystore.certificate_fingerprint(c),
                "not_before": c.not_valid_before_utc.isoformat(),
                "not_after": c.not_valid_after_utc.isoformat(),
            }
            for c in certificates
        ]
        if own:
            document["published"] = args.authority_id in store.published().entries
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    print(f"{entry.authority_id}  (node {node_id}{'' if own else ', cached peer directory'})")
    for name in entry.names:
        print(f"  name      {name.lang}  {name.text}")
    print(f"  address   {' / '.join(entry.address.lines)}")
    postal = f"{entry.address.postal_code} " if entry.address.postal_code else ""
    print(f"            {postal}{entry.address.city}, {entry.address.country}")
    if entry.region:
        print(f"  region    {entry.region}")
    for competence in entry.competences:
        print(f"  competent {competence.legislation_area}")
        if competence.question_sets:
            print(f"            question sets {', '.join(competence.question_sets)}")
        if competence.professions:
            print(f"            professions   {', '.join(competence.professions)}")
        if not competence.question_sets and not competence.professions:
            print("            (the whole legislation area)")
    print(f"  languages {', '.join(entry.working_languages)}")
    for cert in certificates:
        print(
            f"  cert      sha256 {keystore.certificate_fingerprint(cert)}  "
            f"{cert.not_valid_before_utc:%Y-%m-%d} .. {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    if own and not certificates:
        print("  cert      NONE: not published until a certificate is bound (keys issue-national)")
    return 0


def _export(args: argparse.Namespace) -> int:
    store = DirectoryStore(args.node_dir)
    keys = keystore.load_node_keys(args.node_dir)
    directory = store.document(args.since, now=_now())
    if directory is None:
        print(f"A peer at version {args.since} is up to date: nothing to export.", file=sys.stderr)
        return 0
    data = Signer(keys.signing.key, keys.signing.certificate).sign(build_directory(directory))
    kind = (
        f"update {directory.base_version} -> {directory.version}"
        if directory.incremental
        else f"full directory version {directory.version}"
    )
    if args.output and args.output != "-":
        keystore.atomic_write(Path(args.output).absolute(), data, 0o644)
        print(
            f"Wrote the signed {kind} of node {store.node_id} ({len(directory.authorities)} "
            f"authorities, {len(directory.removed)} removed) to {args.output}.",
            file=sys.stderr,
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _import(args: argparse.Namespace) -> int:
    store = DirectoryStore(args.node_dir)
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    result = store.apply_peer_document(args.peer_id, data, now=_now())
    if result.unchanged:
        print(f"Peer {args.peer_id}'s directory version {result.version} is already cached.")
        return 0
    kind = "full directory" if result.full else f"update from version {result.base_version}"
    print(
        f"Applied peer {args.peer_id}'s {kind}: now version {result.version}, "
        f"{len(result.changed)} authorities added or changed, {len(result.removed)} removed."
    )
    # A peer's authorities and the certificates this node pins for them.
    record_change(args.node_dir, Event.AUTHORITIES_CHANGED, args.peer_id)
    record_change(args.node_dir, Event.TRUST_CHANGED, args.peer_id)
    notify_running_node(args.node_dir)
    return 0


# --- search ---------------------------------------------------------------------------------


def _search(args: argparse.Namespace) -> int:
    node_dir = args.node_dir or os.environ.get(NODE_DIR_ENV) or "."
    query = SearchQuery(
        " ".join(args.query),
        country=args.country,
        area=args.area,
        region=args.region,
        lang=args.lang,
        limit=args.limit,
    )
    live = LiveSearch(DirectoryStore(node_dir))
    result = live.search(query)
    if args.json:
        print(json.dumps(search_result_json(result, live), indent=2, ensure_ascii=False))
        return 0
    print(f"{result.total} authorities match; showing {len(result.hits)}.")
    for hit in result.hits:
        entry = hit.entry
        region = f", {entry.region}" if entry.region else ""
        print(f"{hit.rank:>3}. {entry.authority_id}  {hit.name}")
        details = [f"{entry.address.city} ({hit.node_id}{region})"]
        if hit.professions:
            labels = [f"{live.profession_label(p, args.lang)} [{p}]" for p in hit.professions]
            details.append("competent for " + ", ".join(labels))
        details.append("works in " + ",".join(entry.working_languages))
        print(f"     {'; '.join(details)}")
    return 0


# --- demo data -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from gateway.benchmarks.search_data import generate_authorities

    store = DirectoryStore(args.node_dir)
    node_id = store.node_id
    entries = generate_authorities(
        args.count, seed=args.seed, catalogue=store.catalogue, countries=[node_id]
    )
    out = Path(args.out)
    added = 0
    for entry in entries:
        if entry.authority_id in store.records():
            continue
        keystore.issue_national_certificate(args.node_dir, entry.authority_id, out)
        store.add(entry, now=_now())
        added += 1
    published = store.published()
    if added:
        record_change(args.node_dir, Event.TRUST_CHANGED)
        record_change(args.node_dir, Event.AUTHORITIES_CHANGED)
    print(
        f"Added {added} generated authorities of {node_id} (keys of their national systems in "
        f"{out}); directory version {published.version}."
    )
    return 0


# --- registration ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "authorities",
        help="manage the node's authority directory and search the directories",
        description=(
            "Register the authorities this node serves (names in several languages, address, "
            "region, competences from the question catalogue, working languages; each needs a "
            "national-system certificate from 'keys issue-national'), publish them to peers as "
            "a signed, versioned directory, apply peers' directories and search them all. "
            "Exit status 0 on success, 1 for refused input, 3 for a configuration problem."
        ),
    )
    parser.set_defaults(func=usage_when_no_subcommand(parser))
    sub = parser.add_subparsers(dest="authorities_command", metavar="SUBCOMMAND")

    add = sub.add_parser(
        "add",
        help="register an authority of this node",
        description=(
            "Register AUTHORITY_ID (this node's country, ASCII only, e.g. NO-HELSEDIR) and "
            "publish a new directory version. Competences: --area for a whole legislation "
            "area, --question-set and --profession to narrow it (checked against the "
            "catalogue). A national-system certificate must be bound first "
            "(imi-gateway keys issue-national)."
        ),
    )
    add.add_argument("node_dir", metavar="NODE_DIR")
    add.add_argument("authority_id", metavar="AUTHORITY_ID")
    authority_options(add, update=False)
    add.set_defaults(func=_add)

    update = sub.add_parser(
        "update",
        help="change a registered authority",
        description=(
            "Change AUTHORITY_ID: --name adds or replaces the name in that language, "
            "--remove-name drops one; --address replaces the address lines; any of --area, "
            "--question-set, --profession replaces all competences; --language replaces the "
            "working languages. Publishes a new directory version when something changed."
        ),
    )
    update.add_argument("node_dir", metavar="NODE_DIR")
    update.add_argument("authority_id", metavar="AUTHORITY_ID")
    authority_options(update, update=True)
    update.add_argument("--remove-name", action="append", metavar="LANG", help="drop a name")
    update.add_argument("--no-region", action="store_true", help="clear the region")
    update.add_argument("--no-postal-code", action="store_true", help="clear the postal code")
    update.set_defaults(func=_update)

    remove = sub.add_parser(
        "remove",
        help="unregister an authority (peers drop it)",
        description="Unregister AUTHORITY_ID and publish its removal to the peers.",
    )
    remove.add_argument("node_dir", metavar="NODE_DIR")
    remove.add_argument("authority_id", metavar="AUTHORITY_ID")
    remove.set_defaults(func=_remove)

    listing = sub.add_parser(
        "list",
        help="list the registered authorities and the directory version",
        description=(
            "List this node's registered authorities, whether each is published (an "
            "authority without a valid certificate is not), and the directory version."
        ),
    )
    listing.add_argument("node_dir", metavar="NODE_DIR")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    listing.set_defaults(func=_list)

    show = sub.add_parser(
        "show",
        help="show one authority (this node's or a cached peer's)",
        description=(
            "Show AUTHORITY_ID: this node's registration, or the entry in the cached "
            "directory of its country's peer, with certificate fingerprints."
        ),
    )
    show.add_argument("node_dir", metavar="NODE_DIR")
    show.add_argument("authority_id", metavar="AUTHORITY_ID")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    show.set_defaults(func=_show)

    export = sub.add_parser(
        "export",
        help="write the node-signed directory document (full or an update)",
        description=(
            "Write this node's directory, signed with the node signing key: the full "
            "directory, or with --since N what a peer holding version N needs (an "
            "incremental update, or the full directory when N is too old or unknown). "
            "Bound certificates are re-read first, so a rotation or revocation is included."
        ),
    )
    export.add_argument("node_dir", metavar="NODE_DIR")
    export.add_argument("--since", type=version_arg, metavar="N", help="the peer's version")
    export.add_argument(
        "--output", "-o", metavar="FILE", help="write to FILE instead of standard output"
    )
    export.set_defaults(func=_export)

    imp = sub.add_parser(
        "import",
        help="verify and apply a peer's signed directory document",
        description=(
            "Verify FILE ('-' for standard input) against PEER_ID's pinned signing "
            "certificate, check it (every authority of PEER_ID's country, certificates "
            "issued by PEER_ID's CA, not older than the cached version) and apply it to "
            "the cached directory of PEER_ID. For operators without network sync."
        ),
    )
    imp.add_argument("node_dir", metavar="NODE_DIR")
    imp.add_argument("peer_id", metavar="PEER_ID")
    imp.add_argument("file", metavar="FILE")
    imp.set_defaults(func=_import)

    search = sub.add_parser(
        "search",
        help="search authorities in any language (this node's and cached peers')",
        description=(
            "Search this node's and the cached peer directories. Words in any of the 27 "
            "languages match names and, through the catalogue's profession terms, "
            "competences ('lege', 'médico', 'Arzt' and 'doctor' all find authorities "
            "for doctors); case and accents are ignored and prefixes match. Every word "
            f"must match. The node directory is --node-dir, else ${NODE_DIR_ENV}, else the "
            "current directory."
        ),
    )
    search.add_argument("query", nargs="*", metavar="QUERY", help="search words")
    search.add_argument("--node-dir", metavar="NODE_DIR")
    search.add_argument("--country", metavar="CC", help="only this country (e.g. PT)")
    search.add_argument("--area", metavar="AREA", help="only this legislation area (e.g. PQD)")
    search.add_argument("--region", metavar="NUTS", help="only this NUTS region or prefix")
    search.add_argument("--lang", metavar="LANG", help="show names and professions in LANG")
    search.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (20)")
    search.add_argument("--json", action="store_true", help="print JSON for scripts")
    search.set_defaults(func=_search)

    demo = sub.add_parser(
        "demo",
        help="register generated authorities (with certificates) for a demonstration",
        description=(
            "Generate COUNT realistic authorities of this node's country (names in its "
            "languages and often English, NUTS regions, PQD competences), issue a "
            "national-system certificate to each (keys written into DIR) and register "
            "them. Deterministic for a given --seed."
        ),
    )
    demo.add_argument("node_dir", metavar="NODE_DIR")
    demo.add_argument("--out", required=True, metavar="DIR", help="directory for the keys")
    demo.add_argument("--count", type=count_arg, default=12, metavar="COUNT", help="how many (12)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (1)")
    demo.set_defaults(func=_demo)


__all__ = ["build_competences", "register"]
