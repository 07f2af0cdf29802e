"""Text for places that render Markdown: untrusted words shown as written, sentences with one stop."""

from __future__ import annotations

import re

# Every ASCII punctuation character, each of which CommonMark lets a backslash make literal.
_MARKDOWN_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def plain(text: str | None) -> str:
    """Untrusted text (what a customer wrote or is called, a document's name) for places that
    render Markdown (labels, headings, messages): shown as written, never as an image the browser
    fetches, a link, HTML or a Streamlit directive. Where nothing of ours surrounds it, use st.text."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join((text or "").splitlines()))


# A stop after a sentence that already ended ("hours?." "Shop.."), not an ellipsis ("...").
_DOUBLED_STOP = re.compile(r"(?<!\.)([.!?…])\.(?!\.)")


def tidy(text: str) -> str:
    """A message put together from pieces (ours and the backend's), with one stop per sentence end."""
    return _DOUBLED_STOP.sub(r"\1", text)
