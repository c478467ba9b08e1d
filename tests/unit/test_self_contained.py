"""The repository needs nothing beside it: no tracked file names a path outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A sibling checkout (two dots, a slash, a name) or a machine's absolute home or work folder.
# The examples below are built from pieces so that this file does not name such a path itself.
OUTSIDE = re.compile(r"\.\./[A-Za-z_]|(?<![\w./-])/(?:work|root|home|Users|mnt)/")
SKIP_PARTS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", "work"}


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        return [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # an export without .git
        return [p for p in ROOT.rglob("*") if p.is_file() and not SKIP_PARTS & set(p.parts)]


# A relative link between two of the repository's own files (`../docs/x.md` from bench/)
# climbs out of a folder, not out of the repository: allowed when it lands inside it.
RELATIVE = re.compile(r"(?:\.\./)+[\w./-]+")


def outside_references(text: str, where: Path | None = None) -> list[str]:
    found = []
    for match in OUTSIDE.finditer(text):
        if where is not None and match.group(0).startswith(".."):
            link = RELATIVE.match(text, match.start())
            target = (where.parent / link.group(0)).resolve() if link else None
            if target is not None and target.is_relative_to(ROOT) and target.exists():
                continue
        found.append(match.group(0))
    return found


def test_pattern_catches_the_paths_it_is_for():
    assert outside_references('Path("' + "/" + 'work/shared/imagekit/payloads")')
    assert outside_references("ROOT / '" + ".." + "/shared/imagekit'")
    assert outside_references("see " + "/" + "root/.cache")
    assert not outside_references("bench/work/ is ignored; tests/fixtures/imagekit")
    here = ROOT / "bench" / "README.md"
    assert not outside_references("[p](" + ".." + "/docs/performance.md)", here)
    assert outside_references("[p](" + ".." + "/.." + "/shared/STYLE.md)", here)


def test_no_tracked_file_names_a_path_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if outside_references(line, path):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)


def test_reference_data_is_in_the_repository():
    fixtures = ROOT / "tests" / "fixtures" / "imagekit"
    assert (fixtures / "signature-vectors.json").is_file()
    assert (fixtures / "payloads" / "video.transformation.accepted.sdk-test.json").is_file()
    shipped = ROOT / "receiver" / "cli" / "payloads"
    assert len(list(shipped.glob("video.transformation.*.json"))) == 3
