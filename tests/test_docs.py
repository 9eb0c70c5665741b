"""The documentation holds together: README.md is a front page of at most 250 lines, every relative link in it
and in docs/*.md resolves (file, and heading anchor by GitHub's rules), and every numbered-section reference
("spec §N", "docs/algorithm.md §N", "docs/<page> §N", a bare "§N") anywhere in the sources names a file that
exists and a section it numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
SPEC = "docs/algorithm.md"  # what "spec §N" and a bare "§N" in the code refer to (csrc/core/lif.h says so)
SCANNED_DIRS = ("na_cuda", "csrc", "scripts", "tests", "benchmarks", "examples", "docs")
TEXT_SUFFIXES = {".py", ".h", ".cpp", ".cu", ".cuh", ".sh", ".md", ".txt", ".toml", ".cfg", ".yml", ".yaml"}
SKIPPED_PARTS = {"__pycache__", "build", ".venv", "golden", "results"}

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
# "docs/algorithm.md §3", "docs/algorithm §3.2", "spec §5", "Spec §4", or a bare "§9".
SECTION_REF = re.compile(
    r"(?:(?P<doc>docs/[\w-]+(?:/[\w-]+)*)(?:\.md)?\s*,?\s*|(?P<spec>\b[Ss]pec)\s+)?§\s?(?P<num>\d+(?:\.\d+)*)"
)
NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?(?:\s|$)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text with fenced blocks and inline code blanked (same line count), where links are not links."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the text of its links, lower case, only letters, digits, '_', '-' and spaces
    kept, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for _, heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def numbered_sections(text: str) -> set[str]:
    """The numbers of a file's numbered headings: "## 3. NA backward" -> "3", "### 3.1 Error signal" -> "3.1"."""
    out = set()
    for _, heading in HEADING.findall(FENCE.sub("", text)):
        m = NUMBERED.match(heading)
        if m:
            out.add(m.group(1))
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """'file:line: link (why)' for every relative link of ``path`` (in the repository ``root``) that does not
    resolve."""
    text = path.read_text(encoding="utf-8")
    body = prose(text)
    problems = []
    targets = [(m.start(), m.group(1)) for m in LINK.finditer(body)]
    targets += [(m.start(), m.group(1)) for m in REF_DEF.finditer(body)]
    for pos, url in targets:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url) or url.startswith("//"):
            continue  # http(s), mailto: not checked offline
        where = f"{path.relative_to(root)}:{body.count(chr(10), 0, pos) + 1}: {url}"
        file_part, _, anchor = url.partition("#")
        target = (path.parent / file_part).resolve() if file_part else path
        if not target.exists():
            problems.append(f"{where} (no such file)")
        elif root not in target.parents and target != root:
            problems.append(f"{where} (outside the repository)")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text(encoding="utf-8")):
            problems.append(f"{where} (no heading with anchor #{anchor} in {target.relative_to(root)})")
    return problems


def section_refs(path: Path, text: str) -> list[tuple[int, str, str]]:
    """(line, file the reference names, section number) for every § reference in ``text``."""
    rel = path.relative_to(ROOT).as_posix()
    default = rel if rel.startswith("docs/") and numbered_sections(text) else SPEC
    out = []
    for m in SECTION_REF.finditer(text):
        doc = m.group("doc")
        target = f"{doc}.md" if doc and not doc.endswith(".md") else doc
        if m.group("spec"):
            target = SPEC
        out.append((text.count("\n", 0, m.start()) + 1, target or default, m.group("num")))
    return out


def scanned_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for d in SCANNED_DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if p.is_file() and p.suffix in TEXT_SUFFIXES and not SKIPPED_PARTS & set(p.relative_to(ROOT).parts):
                files.append(p)
    return files


def broken_section_refs(files: list[Path]) -> list[str]:
    problems = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for line, target, num in section_refs(path, text):
            where = f"{path.relative_to(ROOT)}:{line}: {target} §{num}"
            doc = ROOT / target
            if not doc.is_file():
                problems.append(f"{where} (no such file)")
            elif num not in numbered_sections(doc.read_text(encoding="utf-8")):
                problems.append(f"{where} (no section numbered {num} there)")
    return problems


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, more than {README_MAX_LINES}: move the detail to a docs/ page and link it"
    )


def test_readme_shows_the_ci_test_command() -> None:
    """.ci/run says it runs "the README's test command": the README must show `make test`."""
    assert re.search(r"^make test\b", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = prose((ROOT / "README.md").read_text(encoding="utf-8"))
    linked = {(ROOT / m.group(1).partition("#")[0]).resolve() for m in LINK.finditer(readme)}
    orphans = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"


def test_section_references_resolve() -> None:
    files = scanned_files()
    assert len(files) > 50  # the scan found the sources
    problems = broken_section_refs(files)
    assert not problems, "section references that name no section:\n" + "\n".join(problems)


def test_the_checks_catch_what_they_should(tmp_path: Path) -> None:
    """The helpers themselves: GitHub's slugs, numbered headings, and the kinds of reference they resolve."""
    assert slug("Converting a spikingjelly model (`na_cuda.nn.convert`)") == (
        "converting-a-spikingjelly-model-na_cudannconvert"
    )
    assert slug("Reliability: what is guaranteed") == "reliability-what-is-guaranteed"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n## A") == {"a", "a-1", "a-2"}
    assert numbered_sections("## 1. Layout\n### 3.1 Error signal\n## Notes 2\n") == {"1", "3.1"}
    sign = "\u00a7"
    text = f"see spec {sign}5, docs/algorithm.md {sign}9, docs/gpu {sign}2 and {sign}3.1\n"
    refs = section_refs(ROOT / "na_cuda" / "x.py", text)
    assert refs == [(1, SPEC, "5"), (1, SPEC, "9"), (1, "docs/gpu.md", "2"), (1, SPEC, "3.1")]
    assert prose("a `[x](nowhere)` b\n```\n[y](nowhere)\n```\n") == "a  b\n\n\n\n"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n## Two words\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/page.md#two-words) [gone](docs/nope.md) [bad anchor](docs/page.md#three)\n"
        "[web](https://example.org/x) [self](#top) `[code](nowhere)`\n# Top\n",
        encoding="utf-8",
    )
    problems = broken_links(readme, tmp_path.resolve())
    assert [p.split(" (")[0] for p in problems] == ["README.md:1: docs/nope.md", "README.md:1: docs/page.md#three"]
