"""Text from elsewhere (a library's error, a run's failure) shown as itself in Streamlit's markdown.

``st.error`` and friends render markdown: an error such as "VisionTransformer.__init__() got an unexpected keyword
argument" showed a bold "init" and lost its underscores, and a folder typed as ``/data/__v2__/`` would show a bold
"v2" inside learngene's own messages.
"""

from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation be escaped with a backslash; these are the characters that start markup.
_MARKUP = re.compile(r"([\\`*_{}\[\]()#+!|<>$~-])")


def markdown_text(text: str) -> str:
    """``text`` escaped so that Streamlit's markdown shows it character for character."""
    return _MARKUP.sub(r"\\\1", text)


# A code span: a run of backticks, anything without that run, the same run again (CommonMark's rule, one line).
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def error_markdown(error: BaseException | str) -> str:
    """learngene's error message for markdown: its `command` code spans stay code, the rest shows as written.

    Our messages quote commands and flags in backticks on purpose; everything else in them (paths and values the
    user typed, a library's words) is plain text.
    """
    text = str(error)
    parts, last = [], 0
    for span in _CODE_SPAN.finditer(text):
        parts += [markdown_text(text[last:span.start()]), span.group(0)]
        last = span.end()
    return "".join(parts + [markdown_text(text[last:])])
