"""The question catalogue in any of the 27 languages, with translation coverage per language."""

from __future__ import annotations

from gateway.console.registry import OPERATOR, Context, Page, page
from gateway.core.catalogue.linting import lint
from gateway.core.ns import LANGUAGES


@page("catalogue", roles=OPERATOR, nav="nav.catalogue", order=70)
async def catalogue_page(ctx: Context) -> Page:
    catalogue = ctx.deps.catalogues.latest
    lang = ctx.arg("lang") or ctx.t.lang
    if lang not in LANGUAGES:
        lang = "en"
    report = await ctx.deps.run(lint, catalogue, xsd11=False)
    area_code = ctx.arg("area") or next(iter(catalogue.areas), "")
    area = catalogue.areas.get(area_code)
    sets = []
    if area is not None:
        for code in area.question_sets:
            qset = catalogue.question_sets[code]
            sets.append(
                {
                    "code": code,
                    "title": catalogue.text(code, lang),
                    "questions": [(q.code, catalogue.text(q.code, lang)) for q in qset.questions],
                }
            )
    return Page(
        "catalogue.html",
        {
            "version": catalogue.version,
            "lang": lang,
            "all_languages": LANGUAGES,
            "areas": [(code, catalogue.text(code, lang)) for code in catalogue.areas],
            "area": area_code,
            "sets": sets,
            "coverage": report.coverage,
        },
    )
