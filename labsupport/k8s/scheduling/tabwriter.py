"""Go's text/tabwriter, the column aligner behind `kubectl describe` and `kubectl get`.

    >>> from labsupport.k8s.scheduling.tabwriter import align
    >>> print(align("Name:\\tgpu-a1\\nRoles:\\t<none>\\nLabels:\\tgpu=h100\\n\\tzone=a\\n"))
    Name:    gpu-a1
    Roles:   <none>
    Labels:  gpu=h100
             zone=a
    <BLANKLINE>

A cell is text ended by a tab; the text after a line's last tab is not a cell and is never
padded. A column is aligned over the block of consecutive lines that have a cell in it, to
the widest cell plus `padding` (`format` and `writeLines` in Go's
src/text/tabwriter/tabwriter.go). kubectl describe uses minwidth 0, tabwidth 8, padding 2 and
spaces; kubectl get uses padding 3.
"""

from __future__ import annotations


def align(text: str, padding: int = 2, minwidth: int = 0) -> str:
    """`text` with tab-terminated cells padded into aligned columns."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format(lines, 0, len(lines), [], padding, minwidth, out)
    return "\n".join(out)


def _format(lines, line0: int, line1: int, widths: list[int], padding, minwidth, out) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:  # no cell in this column on this line
            this += 1
            continue
        _write(lines, line0, this, widths, out)  # the lines before the block
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format(lines, line0, this, [*widths, width], padding, minwidth, out)
        line0 = this
    _write(lines, line0, line1, widths, out)


def _write(lines, line0: int, line1: int, widths: list[int], out) -> None:
    for cells in lines[line0:line1]:
        text = ""
        for j, cell in enumerate(cells):
            text += cell.ljust(widths[j]) if j < len(widths) and j < len(cells) - 1 else cell
        out.append(text)
