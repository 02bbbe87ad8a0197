"""The documents point only at files that exist in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCUMENTS = ["README.md", "action.yml", *(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)#\s]+)")
_MENTION = re.compile(r"`((?:guard|checks|rollback|tests|docs|deploy|bench|\.ci)/[\w./-]*\w)")
GENERATED = frozenset({"bench/results", "build/lambda"})  # written by `make bench` / `make lambda-package`
_PLAIN = re.compile(r"(?<![\w/.])((?:docs|deploy)/[\w./-]*\.\w+)")


def _targets(text: str) -> set[str]:
    links = {m for m in _LINK.findall(text) if not m.startswith(("http://", "https://", "mailto:"))}
    return links | set(_MENTION.findall(text)) | set(_PLAIN.findall(text))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_path_a_document_names_exists_inside_the_repository(document: str) -> None:
    text = (ROOT / document).read_text()
    for target in sorted(_targets(text) - GENERATED):
        path = (ROOT / target.split("::")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{document} points outside the repository: {target}"
        assert path.exists() or any(ROOT.glob(target)), f"{document} names a missing file: {target}"
    assert "../" not in "".join(_LINK.findall(text)), f"{document} links outside the repository"
