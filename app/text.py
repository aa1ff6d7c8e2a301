"""Text from elsewhere (a library's error, a run's failure) shown as itself in Streamlit's markdown.

``st.error`` and friends render markdown: an error such as "VisionTransformer.__init__() got an unexpected keyword
argument" showed a bold "init" and lost its underscores.
"""

from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation be escaped with a backslash; these are the characters that start markup.
_MARKUP = re.compile(r"([\\`*_{}\[\]()#+!|<>$~-])")


def markdown_text(text: str) -> str:
    """``text`` escaped so that Streamlit's markdown shows it character for character."""
    return _MARKUP.sub(r"\\\1", text)
