"""docs/errors.md lists exactly the error codes the code defines."""

import pathlib

from gateway.commands.errors import all_error_classes, render_markdown

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def test_error_catalogue_document_is_generated_from_the_code() -> None:
    assert DOC.read_text() == render_markdown(), (
        "docs/errors.md is stale: run `imi-gateway errors --markdown > docs/errors.md`"
    )


def test_every_error_code_is_unique_upper_case_and_has_a_meaning() -> None:
    classes = all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert cls.code.replace("_", "").isalnum() and cls.code.isupper(), cls
        assert (cls.__doc__ or "").strip(), f"{cls.code} has no docstring"
        assert 400 <= cls.http_status <= 599, cls
