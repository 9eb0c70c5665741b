"""Loops of the CUDA kernels' PTX: for every kernel entry, its instruction count and each loop (a backward branch)
with the PTX instructions and global loads/stores in its body. Used to report the NA backward's inner loop
(issue 9's before/after); fully unrolled code has no loop, so straight-line entries report only their size.

    nvcc ... -arch=sm_90 -ptx csrc/cuda/lif_kernels.cu -o k.ptx && python3 scripts/ptx_loops.py k.ptx [FILTER]
"""

from __future__ import annotations

import re
import sys

LABEL = re.compile(r"^(\$L__\w+):")
BRANCH = re.compile(r"\bbra(?:\.uni)?\s+(\$L__\w+);")


def entries(text: str):
    """(name, body lines) of each .entry in the PTX."""
    for m in re.finditer(r"\.entry\s+(\w+)\((.*?)\n\{(.*?)\n\}", text, re.S):
        yield m.group(1), m.group(3).splitlines()


def is_instruction(line: str) -> bool:
    s = line.strip()
    return bool(s) and s.endswith(";") and not s.startswith((".reg", ".local", ".shared", "//", ".pragma", ".loc"))


def loops(lines: list[str]):
    """(first, last) line indices of each backward branch's body."""
    where = {m.group(1): i for i, line in enumerate(lines) if (m := LABEL.match(line.strip()))}
    for i, line in enumerate(lines):
        m = BRANCH.search(line)
        if m and where.get(m.group(1), i + 1) < i:
            yield where[m.group(1)], i


def main() -> None:
    text = open(sys.argv[1]).read()
    pattern = sys.argv[2] if len(sys.argv) > 2 else ""
    for name, lines in entries(text):
        if pattern not in name:
            continue
        total = sum(map(is_instruction, lines))
        print(f"{name}: {total} instructions")
        for a, b in sorted(loops(lines), key=lambda r: r[1] - r[0]):
            body = lines[a : b + 1]
            n = sum(map(is_instruction, body))
            ld = sum("ld.global" in x for x in body)
            st = sum("st.global" in x for x in body)
            print(f"    loop lines {a}-{b}: {n} instructions, {ld} ld.global, {st} st.global")


if __name__ == "__main__":
    main()
