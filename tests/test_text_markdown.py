"""Text from a store, written into Markdown (report.md, table.md, --format md), stays text."""

from __future__ import annotations

from altlearn.compare.table import markdown_table
from altlearn.text import markdown_text


def test_a_label_cannot_become_html_a_link_code_or_a_new_cell():
    label = "<script>alert(1)</script> & [x](javascript:1) `code` a|b\x1b[2J"
    text = markdown_text(label)
    assert "<" not in text and ">" not in text and "](" not in text and "\x1b" not in text
    assert "&lt;script&gt;" in text and "&amp;" in text and "\\`code\\`" in text and "a\\|b" in text
    assert markdown_text("[97.50, 98.10]") == "[97.50, 98.10]"  # an interval reads as written


def test_a_markdown_table_escapes_every_cell():
    table = markdown_table(("group", "n"), 1, [["<b>bp</b>", "5"]])
    assert table.splitlines()[2] == "| &lt;b&gt;bp&lt;/b&gt; | 5 |"
