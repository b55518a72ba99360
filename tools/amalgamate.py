#!/usr/bin/env python3
"""Builds single_include/ioloop/ioloop.hpp from include/ioloop/ioloop.hpp.

Every `#include "ioloop/..."` is inlined depth-first in include order, each file once
(the first occurrence wins); every other include passes through unchanged. An ioloop
include that names no file is an error. The output is deterministic: UTF-8, '\\n' line
ends, no timestamps.

    tools/amalgamate.py           write the single header
    tools/amalgamate.py --check   exit 1, with a diff, if the committed header is stale
"""
import difflib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "include"
ENTRY = "ioloop/ioloop.hpp"
OUTPUT = ROOT / "single_include" / "ioloop" / "ioloop.hpp"

INCLUDE = re.compile(r'^\s*#\s*include\s*"(ioloop/[^"]+)"\s*$')

BANNER = """\
// ioloop: Python asyncio's event loop for C++20, in one header.
// SPDX-License-Identifier: MIT
//
// GENERATED FILE, DO NOT EDIT. Made by tools/amalgamate.py from include/ioloop/;
// change the sources there and run the script again.
"""


def inline(name, seen, stack):
    """Returns the text of `name` with its ioloop includes inlined."""
    path = SOURCE_DIR / name
    if not path.is_file():
        chain = " -> ".join(stack + [name])
        sys.exit(f"amalgamate: cannot find {name} (included via {chain})")
    seen.add(name)
    out = [f"// begin file {name}\n"]
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        match = INCLUDE.match(line)
        if not match:
            out.append(line if line.endswith("\n") else line + "\n")
        elif match.group(1) not in seen:
            out.append(inline(match.group(1), seen, stack + [name]))
    out.append(f"// end file {name}\n")
    return "".join(out)


def build():
    return BANNER + "\n" + inline(ENTRY, set(), [])


def main(argv):
    text = build()
    if argv[1:] == ["--check"]:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True),
            "committed/" + OUTPUT.name, "generated/" + OUTPUT.name))
        print(f"\n{OUTPUT.relative_to(ROOT)} is stale: run tools/amalgamate.py and commit it.",
              file=sys.stderr)
        return 1
    if argv[1:]:
        sys.exit(__doc__)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
