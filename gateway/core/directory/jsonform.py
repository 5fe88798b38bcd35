"""The JSON form of an authority entry (sans-IO).

One form for every JSON the node writes: the directory state file
(``directory/state.json``), ``imi-gateway authorities ... --json`` and the
search API's JSON answer (:mod:`gateway.core.search.jsonform`).
"""

from __future__ import annotations

from typing import Any

from gateway.core.directory.document import Address, AuthorityEntry, Competence
from gateway.core.docxml import LocalizedText, b64decode, b64encode

__all__ = ["entry_from_json", "entry_to_json", "json_str", "json_strs"]


def entry_to_json(entry: AuthorityEntry, *, certificates: bool = True) -> dict[str, Any]:
    """``entry`` as a JSON object (the form of state.json and of ``--json`` output)."""
    data: dict[str, Any] = {
        "id": entry.authority_id,
        "names": [{"lang": n.lang, "text": n.text} for n in entry.names],
        "address": {
            "lines": list(entry.address.lines),
            "postal_code": entry.address.postal_code,
            "city": entry.address.city,
            "country": entry.address.country,
        },
        "region": entry.region,
        "competences": [
            {
                "area": c.legislation_area,
                "question_sets": list(c.question_sets),
                "professions": list(c.professions),
            }
            for c in entry.competences
        ],
        "working_languages": list(entry.working_languages),
    }
    if certificates:
        data["certificates"] = [b64encode(der) for der in entry.certificates]
    return data


def json_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(what)
    return value


def json_strs(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(what)
    return tuple(json_str(v, what) for v in value)


def entry_from_json(data: Any) -> AuthorityEntry:
    """The entry :func:`entry_to_json` wrote (TypeError/KeyError/ValueError when malformed)."""
    if not isinstance(data, dict):
        raise TypeError("authority")
    address = data["address"]
    if not isinstance(address, dict):
        raise TypeError("address")
    postal = address.get("postal_code")
    region = data.get("region")
    competences = data["competences"]
    names = data["names"]
    if not isinstance(competences, list) or not isinstance(names, list):
        raise TypeError("competences")
    return AuthorityEntry(
        authority_id=json_str(data["id"], "id"),
        names=tuple(
            LocalizedText(json_str(n["text"], "name"), json_str(n["lang"], "lang")) for n in names
        ),
        address=Address(
            lines=json_strs(address["lines"], "address lines"),
            city=json_str(address["city"], "city"),
            country=json_str(address["country"], "country"),
            postal_code=None if postal is None else json_str(postal, "postal code"),
        ),
        region=None if region is None else json_str(region, "region"),
        competences=tuple(
            Competence(
                json_str(c["area"], "area"),
                json_strs(c.get("question_sets", []), "question sets"),
                json_strs(c.get("professions", []), "professions"),
            )
            for c in competences
        ),
        working_languages=json_strs(data["working_languages"], "working languages"),
        certificates=tuple(b64decode(v) for v in json_strs(data.get("certificates", []), "certs")),
    )
