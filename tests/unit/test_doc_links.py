"""Every relative link in README.md and docs/ points at a file, and an anchor, that exists.

Links are markdown links and images outside code (fenced blocks and inline code spans);
anchors are GitHub's heading ids (lower case, punctuation dropped, spaces as hyphens, a
`-1`, `-2` … suffix on repeats). Links to other sites are not followed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, mailto:, …


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every markdown link or image outside code."""
    found = []
    for number, line in prose_lines(text):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            found.append((number, match.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's id of a heading: its text, lower case, without punctuation, hyphenated."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The ids GitHub gives the headings of a markdown text (repeats numbered)."""
    seen: dict[str, int] = {}
    ids = set()
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def broken_links(document: Path) -> list[str]:
    """Each link of `document` whose file or anchor does not exist, as `file:line: target`."""
    broken = []
    for number, target in links(document.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        where = f"{document.relative_to(ROOT) if document.is_relative_to(ROOT) else document}"
        if not resolved.exists():
            broken.append(f"{where}:{number}: {target} (no such file)")
        elif (
            anchor
            and resolved.suffix == ".md"
            and anchor not in anchors(resolved.read_text(encoding="utf-8"))
        ):
            broken.append(f"{where}:{number}: {target} (no such heading)")
    return broken


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_at_a_file_and_heading_that_exist(document):
    assert broken_links(document) == []


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## 2. A `code` heading: yes\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Same\n\n## Same\n\n"
        "[ok](other.md) [ok](other.md#2-a-code-heading-yes) [ok](#same-1) [ok](#page)\n"
        "[web](https://example.com/x#y) `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n"
        "[gone](missing.md) [bad anchor](other.md#nope) ![img](pic.png)\n"
    )
    assert broken_links(page) == [
        f"{page}:12: missing.md (no such file)",
        f"{page}:12: other.md#nope (no such heading)",
        f"{page}:12: pic.png (no such file)",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        (
            "One machine: the processes of `ikledger serve`",
            "one-machine-the-processes-of-ikledger-serve",
        ),
        ("3. Timeouts: `IKLEDGER_DB_TIMEOUT`", "3-timeouts-ikledger_db_timeout"),
        ("9. Web pages: p99 ≤ 50 ms", "9-web-pages-p99--50-ms"),
        ("Proof JSON", "proof-json"),
    ],
)
def test_anchors_are_githubs_heading_ids(heading, anchor):
    assert slug(heading) == anchor
