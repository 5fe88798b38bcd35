"""Deterministic test data for the search benchmark: authorities across all EEA
countries with names in their languages, and queries in all 27 languages."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config import default_languages
from gateway.core.catalogue import Catalogue, load_catalogues
from gateway.core.directory.document import Address, AuthorityEntry, Competence
from gateway.core.docxml import LocalizedText
from gateway.core.ns import EEA_COUNTRIES
from gateway.core.search import SearchQuery, tokenize

__all__ = ["REGIONS", "WORDS", "Words", "generate_authorities", "generate_queries"]


@dataclass(frozen=True)
class Words:
    """Name parts in one language: scope adjectives, body nouns, a street word."""

    national: str
    regional: str
    bodies: tuple[str, ...]
    street: str


#: Realistic name parts per IMI language.
WORDS: dict[str, Words] = {
    "bg": Words(
        "Национален", "Регионален", ("съвет", "камара", "регистър", "агенция", "инспекция"), "ул."
    ),
    "cs": Words("Národní", "Krajský", ("rada", "komora", "registr", "úřad", "agentura"), "ulice"),
    "da": Words(
        "Nationale", "Regionale", ("råd", "kammer", "register", "styrelse", "tilsyn"), "Vej"
    ),
    "de": Words("Bundes", "Landes", ("Kammer", "Rat", "Register", "Behörde", "Amt"), "Straße"),
    "el": Words(
        "Εθνικό",
        "Περιφερειακό",
        ("Συμβούλιο", "Επιμελητήριο", "Μητρώο", "Αρχή", "Διεύθυνση"),
        "Οδός",
    ),
    "en": Words(
        "National", "Regional", ("Council", "Chamber", "Register", "Authority", "Agency"), "Street"
    ),
    "es": Words(
        "Nacional", "Regional", ("Consejo", "Colegio", "Registro", "Autoridad", "Agencia"), "Calle"
    ),
    "et": Words(
        "Riiklik", "Piirkondlik", ("nõukogu", "koda", "register", "amet", "inspektsioon"), "tänav"
    ),
    "fi": Words(
        "Valtakunnallinen",
        "Alueellinen",
        ("neuvosto", "kamari", "rekisteri", "virasto", "lautakunta"),
        "katu",
    ),
    "fr": Words(
        "National", "Régional", ("Conseil", "Ordre", "Registre", "Autorité", "Agence"), "rue"
    ),
    "ga": Words(
        "Náisiúnta",
        "Réigiúnach",
        ("Comhairle", "Cumann", "Clár", "Údarás", "Gníomhaireacht"),
        "Sráid",
    ),
    "hr": Words(
        "Nacionalni", "Regionalni", ("vijeće", "komora", "registar", "agencija", "uprava"), "ulica"
    ),
    "hu": Words(
        "Országos",
        "Regionális",
        ("tanács", "kamara", "nyilvántartás", "hatóság", "hivatal"),
        "utca",
    ),
    "it": Words(
        "Nazionale", "Regionale", ("Consiglio", "Ordine", "Registro", "Autorità", "Agenzia"), "via"
    ),
    "lt": Words(
        "Nacionalinė",
        "Regioninė",
        ("taryba", "rūmai", "registras", "tarnyba", "inspekcija"),
        "gatvė",
    ),
    "lv": Words(
        "Nacionālā", "Reģionālā", ("padome", "palāta", "reģistrs", "dienests", "inspekcija"), "iela"
    ),
    "mt": Words(
        "Nazzjonali", "Reġjonali", ("Kunsill", "Kamra", "Reġistru", "Awtorità", "Aġenzija"), "Triq"
    ),
    "nl": Words(
        "Nationale", "Regionale", ("Raad", "Kamer", "Register", "Autoriteit", "Inspectie"), "straat"
    ),
    "pl": Words(
        "Krajowa", "Regionalna", ("Rada", "Izba", "Rejestr", "Urząd", "Inspekcja"), "ulica"
    ),
    "pt": Words(
        "Nacional",
        "Regional",
        ("Conselho", "Ordem", "Registo", "Autoridade", "Direção-Geral"),
        "Rua",
    ),
    "ro": Words(
        "Națională",
        "Regională",
        ("Consiliul", "Colegiul", "Registrul", "Autoritatea", "Agenția"),
        "Strada",
    ),
    "sk": Words(
        "Národná", "Regionálna", ("rada", "komora", "register", "úrad", "inšpekcia"), "ulica"
    ),
    "sl": Words(
        "Nacionalni", "Regionalni", ("svet", "zbornica", "register", "agencija", "urad"), "ulica"
    ),
    "sv": Words(
        "Nationella",
        "Regionala",
        ("rådet", "nämnden", "registret", "myndigheten", "inspektionen"),
        "gatan",
    ),
    "is": Words("Lands", "Svæðis", ("ráð", "félag", "skrá", "stofnun", "eftirlit"), "gata"),
    "nb": Words(
        "Nasjonalt", "Regionalt", ("råd", "forening", "register", "tilsyn", "direktorat"), "gate"
    ),
    "nn": Words(
        "Nasjonalt", "Regionalt", ("råd", "foreining", "register", "tilsyn", "direktorat"), "gate"
    ),
}

#: NUTS regions per country: (code, name in the country's language).
REGIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "AT": (
        ("AT13", "Wien"),
        ("AT12", "Niederösterreich"),
        ("AT22", "Steiermark"),
        ("AT31", "Oberösterreich"),
        ("AT32", "Salzburg"),
        ("AT33", "Tirol"),
    ),
    "BE": (
        ("BE10", "Bruxelles"),
        ("BE21", "Antwerpen"),
        ("BE23", "Oost-Vlaanderen"),
        ("BE32", "Hainaut"),
        ("BE33", "Liège"),
    ),
    "BG": (
        ("BG41", "Югозападен"),
        ("BG42", "Южен централен"),
        ("BG33", "Североизточен"),
        ("BG31", "Северозападен"),
    ),
    "CY": (("CY00", "Κύπρος"),),
    "CZ": (
        ("CZ01", "Praha"),
        ("CZ02", "Střední Čechy"),
        ("CZ06", "Jihovýchod"),
        ("CZ08", "Moravskoslezsko"),
    ),
    "DE": (
        ("DE1", "Baden-Württemberg"),
        ("DE2", "Bayern"),
        ("DE3", "Berlin"),
        ("DE6", "Hamburg"),
        ("DEA", "Nordrhein-Westfalen"),
        ("DED", "Sachsen"),
    ),
    "DK": (
        ("DK01", "Hovedstaden"),
        ("DK02", "Sjælland"),
        ("DK03", "Syddanmark"),
        ("DK04", "Midtjylland"),
        ("DK05", "Nordjylland"),
    ),
    "EE": (("EE00", "Eesti"),),
    "EL": (
        ("EL30", "Αττική"),
        ("EL52", "Κεντρική Μακεδονία"),
        ("EL43", "Κρήτη"),
        ("EL63", "Δυτική Ελλάδα"),
    ),
    "ES": (
        ("ES30", "Madrid"),
        ("ES51", "Cataluña"),
        ("ES61", "Andalucía"),
        ("ES52", "Comunitat Valenciana"),
        ("ES11", "Galicia"),
        ("ES21", "País Vasco"),
    ),
    "FI": (
        ("FI1B", "Helsinki-Uusimaa"),
        ("FI19", "Länsi-Suomi"),
        ("FI1C", "Etelä-Suomi"),
        ("FI1D", "Pohjois- ja Itä-Suomi"),
        ("FI20", "Åland"),
    ),
    "FR": (
        ("FR10", "Île-de-France"),
        ("FRK2", "Rhône-Alpes"),
        ("FRL0", "Provence-Alpes-Côte d'Azur"),
        ("FRI1", "Aquitaine"),
        ("FRE1", "Nord-Pas-de-Calais"),
        ("FRG0", "Pays de la Loire"),
    ),
    "HR": (
        ("HR05", "Grad Zagreb"),
        ("HR03", "Jadranska Hrvatska"),
        ("HR06", "Sjeverna Hrvatska"),
        ("HR02", "Panonska Hrvatska"),
    ),
    "HU": (
        ("HU11", "Budapest"),
        ("HU12", "Pest"),
        ("HU21", "Közép-Dunántúl"),
        ("HU31", "Észak-Magyarország"),
        ("HU33", "Dél-Alföld"),
    ),
    "IE": (("IE04", "Northern and Western"), ("IE05", "Southern"), ("IE06", "Eastern and Midland")),
    "IS": (("IS00", "Ísland"),),
    "IT": (
        ("ITC4", "Lombardia"),
        ("ITI4", "Lazio"),
        ("ITF3", "Campania"),
        ("ITG1", "Sicilia"),
        ("ITC1", "Piemonte"),
        ("ITH3", "Veneto"),
    ),
    "LI": (("LI00", "Liechtenstein"),),
    "LT": (("LT01", "Sostinės regionas"), ("LT02", "Vidurio ir vakarų Lietuvos regionas")),
    "LU": (("LU00", "Luxembourg"),),
    "LV": (("LV00", "Latvija"),),
    "MT": (("MT00", "Malta"),),
    "NL": (
        ("NL32", "Noord-Holland"),
        ("NL33", "Zuid-Holland"),
        ("NL31", "Utrecht"),
        ("NL41", "Noord-Brabant"),
        ("NL22", "Gelderland"),
    ),
    "NO": (
        ("NO08", "Oslo og Viken"),
        ("NO09", "Agder og Sør-Østlandet"),
        ("NO0A", "Vestlandet"),
        ("NO06", "Trøndelag"),
        ("NO07", "Nord-Noreg"),
        ("NO02", "Innlandet"),
    ),
    "PL": (
        ("PL91", "Warszawski stołeczny"),
        ("PL21", "Małopolskie"),
        ("PL22", "Śląskie"),
        ("PL41", "Wielkopolskie"),
        ("PL51", "Dolnośląskie"),
        ("PL63", "Pomorskie"),
    ),
    "PT": (
        ("PT11", "Norte"),
        ("PT16", "Centro"),
        ("PT17", "Área Metropolitana de Lisboa"),
        ("PT15", "Algarve"),
        ("PT18", "Alentejo"),
        ("PT20", "Açores"),
        ("PT30", "Madeira"),
    ),
    "RO": (
        ("RO32", "București-Ilfov"),
        ("RO11", "Nord-Vest"),
        ("RO21", "Nord-Est"),
        ("RO42", "Vest"),
    ),
    "SE": (
        ("SE11", "Stockholm"),
        ("SE23", "Västsverige"),
        ("SE22", "Sydsverige"),
        ("SE33", "Övre Norrland"),
    ),
    "SI": (("SI03", "Vzhodna Slovenija"), ("SI04", "Zahodna Slovenija")),
    "SK": (
        ("SK01", "Bratislavský kraj"),
        ("SK02", "Západné Slovensko"),
        ("SK03", "Stredné Slovensko"),
        ("SK04", "Východné Slovensko"),
    ),
}

_AREA = "PQD"


def _initials(text: str) -> str:
    letters = "".join(t[0] for t in tokenize(text) if t[0].isascii() and t[0].isalnum())
    return letters.upper()[:6] or "A"


def generate_authorities(
    count: int,
    *,
    seed: int = 1,
    catalogue: Catalogue | None = None,
    countries: Sequence[str] | None = None,
) -> list[AuthorityEntry]:
    """``count`` authorities spread over ``countries`` (default: all EEA), deterministic in ``seed``.

    Each has names in its country's languages (half of them also in
    English), an address in a real NUTS region, working languages, and a PQD
    competence: most for one or two professions (with their question sets),
    some for several, a few for the whole area. No certificates.
    """
    catalogue = catalogue or load_catalogues().latest
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not secrets
    professions = catalogue.professions()
    codes = sorted(professions)
    sets_of = catalogue.question_sets_by_profession()
    chosen_countries = sorted(countries or EEA_COUNTRIES)
    entries = []
    for number in range(count):
        country = chosen_countries[number % len(chosen_countries)]
        languages = list(default_languages(country))
        region_code, region_name = rng.choice(REGIONS[country])
        roll = rng.random()
        if roll < 0.06:
            picked: list[str] = []
        elif roll < 0.16:
            picked = rng.sample(codes, rng.randint(3, 5))
        else:
            picked = rng.sample(codes, rng.randint(1, 2))
        regional = rng.random() < 0.6
        body_index = rng.randrange(5)
        name_languages = languages + (
            ["en"] if "en" not in languages and rng.random() < 0.5 else []
        )
        names = []
        for lang in name_languages:
            words = WORDS[lang]
            scope = words.regional if regional else words.national
            body = words.bodies[body_index]
            if picked:
                terms = professions[picked[0]].get(lang) or professions[picked[0]]["en"]
                subject = terms[rng.randrange(len(terms))]
            else:
                subject = (
                    catalogue.areas[_AREA].titles[lang].text
                    if lang in catalogue.areas[_AREA].titles
                    else "IMI"
                )
            text = f"{scope} {body} – {subject}"
            if regional:
                text += f" – {region_name}"
            names.append(LocalizedText(text[:300], lang))
        authority_id = f"{country}-{_initials(names[0].text)}-{number:06d}"
        address = Address(
            lines=(f"{WORDS[languages[0]].street} {rng.randint(1, 250)}",),
            city=region_name,
            country=country,
            postal_code=f"{rng.randint(1000, 99999)}",
        )
        question_sets = tuple(s for p in picked for s in sets_of.get(p, ()))
        working = tuple(dict.fromkeys([*languages, *(["en"] if rng.random() < 0.4 else [])]))
        entries.append(
            AuthorityEntry(
                authority_id=authority_id,
                names=tuple(names),
                address=address,
                region=region_code,
                competences=(Competence(_AREA, question_sets, tuple(picked)),),
                working_languages=working,
                certificates=(),
            )
        )
    return entries


def generate_queries(
    count: int,
    entries: Sequence[AuthorityEntry],
    *,
    seed: int = 2,
    catalogue: Catalogue | None = None,
) -> list[SearchQuery]:
    """A realistic mix of ``count`` queries over ``entries`` (deterministic in ``seed``).

    About 40% single profession words in a random language, 15% prefixes
    (3-5 characters), 20% two-word queries (body or scope word plus a
    profession word, or a profession word plus a region), 10% body or region
    words, 15% full multi-word profession terms; a fifth of all carry a
    country, region or area filter, and each names a searcher language.
    """
    catalogue = catalogue or load_catalogues().latest
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not secrets
    professions = catalogue.professions()
    terms = [(lang, term) for p in professions.values() for lang, ts in p.items() for term in ts]
    words = [w for _, term in terms for w in term.split() if len(w) > 3]
    languages = sorted(WORDS)
    queries = []
    for _ in range(count):
        roll = rng.random()
        lang, term = rng.choice(terms)
        if roll < 0.40:
            text = max(term.split(), key=len)
        elif roll < 0.55:
            word = rng.choice(words)
            text = word[: rng.randint(3, min(5, len(word)))]
        elif roll < 0.75:
            if rng.random() < 0.5:
                w = WORDS[lang]
                text = f"{rng.choice((*w.bodies, w.national, w.regional))} {max(term.split(), key=len)}"
            else:
                where = rng.choice(sorted(REGIONS))
                text = f"{max(term.split(), key=len)} {rng.choice(REGIONS[where])[1].split()[0]}"
        elif roll < 0.85:
            if rng.random() < 0.5:
                text = rng.choice(WORDS[rng.choice(languages)].bodies)
            else:
                text = rng.choice(REGIONS[rng.choice(sorted(REGIONS))])[1]
        else:
            text = term
        country: str | None = None
        area: str | None = None
        region: str | None = None
        if rng.random() < 0.2:
            kind = rng.randrange(3)
            if kind == 0:
                country = rng.choice(sorted(EEA_COUNTRIES))
            elif kind == 1:
                region = rng.choice(REGIONS[rng.choice(sorted(REGIONS))])[0]
            else:
                area = _AREA
        queries.append(
            SearchQuery(
                " ".join(text.split()[:8])[:200],
                country=country,
                area=area,
                region=region,
                lang=rng.choice(languages),
            )
        )
    return queries
