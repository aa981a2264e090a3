"""Split Markdown (or plain text) into passages: one per section, long sections in chunks."""

import re
from dataclasses import dataclass

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
SECTION_SEPARATOR = " > "
# Long enough to keep a rule and its exceptions together, short enough to cite precisely.
MAX_PASSAGE_CHARS = 1500


@dataclass(frozen=True)
class Section:
    path: str  # headings from the top, e.g. "Refund policy > Time window"; "" before any
    text: str


def first_heading(text: str) -> str | None:
    """The first level-one heading, the natural title of a Markdown document."""
    for heading_level, heading, _ in _headings(text):
        if heading_level == 1:
            return heading
    return None


def split_sections(text: str) -> list[Section]:
    """Sections in document order; empty ones (a heading right before a sub-heading) are
    dropped, and long ones become several sections with the same path."""
    sections: list[Section] = []
    trail: list[tuple[int, str]] = []
    body: list[str] = []

    def flush() -> None:
        path = SECTION_SEPARATOR.join(heading for _, heading in trail)
        sections.extend(Section(path, chunk) for chunk in _chunks("\n".join(body)))
        body.clear()

    for level, heading, line in _headings(text):
        if level is None:
            body.append(line)
            continue
        flush()
        while trail and trail[-1][0] >= level:
            trail.pop()
        trail.append((level, heading))
    flush()
    return sections


def _headings(text: str):
    """(level, heading, line) per line; level is None for lines that are not headings,
    including '#' lines inside fenced code blocks."""
    in_fence = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match:
            yield len(match.group(1)), match.group(2).strip(), line
        else:
            yield None, "", line


def _chunks(text: str) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    chunks: list[str] = []
    current = ""
    for paragraph in paragraphs:
        for piece in _hard_split(paragraph):
            if current and len(current) + 2 + len(piece) > MAX_PASSAGE_CHARS:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _hard_split(paragraph: str) -> list[str]:
    """A paragraph longer than a passage is cut at word boundaries."""
    pieces: list[str] = []
    while len(paragraph) > MAX_PASSAGE_CHARS:
        cut = paragraph.rfind(" ", 0, MAX_PASSAGE_CHARS)
        cut = cut if cut > 0 else MAX_PASSAGE_CHARS
        pieces.append(paragraph[:cut].strip())
        paragraph = paragraph[cut:].strip()
    pieces.append(paragraph)
    return pieces
