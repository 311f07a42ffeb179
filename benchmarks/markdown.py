"""Writing a benchmark's figures into a Markdown document, one "## " section per benchmark."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, section: str, *, title: str = "# Performance") -> None:
    """Replace the section of ``path`` whose "## " heading is ``section``'s first line (up to the next
    "## " heading) with ``section``, or append it; a missing file starts with ``title``."""
    heading = section.lstrip().splitlines()[0]
    if not heading.startswith("## "):
        raise ValueError(f"a section starts with a '## ' heading, got {heading!r}")
    text = path.read_text() if path.exists() else title + "\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.strip() + "\n\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section.strip() + "\n"
    path.write_text(text.rstrip() + "\n")
