#!/usr/bin/env python3
"""Builds single_include/ioloop/ioloop.hpp from include/ioloop/ioloop.hpp, and
single_include/ioloop/ssl.hpp (the optional TLS part) from include/ioloop/ssl.hpp.

Every `#include "ioloop/..."` is inlined depth-first in include order, each file once
(the first occurrence wins), except the internal macros' scope and unscope, which have no
include guard and are inlined wherever they are included; every other include passes
through unchanged. ssl.hpp includes the single ioloop.hpp beside it (`#include
"ioloop.hpp"`) and inlines only what that one does not hold. An ioloop include that names
no file is an error. The output is deterministic: UTF-8, '\\n' line ends, no timestamps.

    tools/amalgamate.py           write the single headers
    tools/amalgamate.py --check   exit 1, with a diff, if a committed header is stale
"""
import difflib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "include"
ENTRY = "ioloop/ioloop.hpp"
OUTPUT = ROOT / "single_include" / "ioloop" / "ioloop.hpp"
SSL_ENTRY = "ioloop/ssl.hpp"
SSL_OUTPUT = ROOT / "single_include" / "ioloop" / "ssl.hpp"
# Included again on purpose (no include guard): inlined at every include.
REINCLUDED = {"ioloop/detail/macro_scope.hpp", "ioloop/detail/macro_unscope.hpp"}

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
    if name not in REINCLUDED:
        seen.add(name)
    out = [f"// begin file {name}\n"]
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        match = INCLUDE.match(line)
        if not match:
            out.append(line if line.endswith("\n") else line + "\n")
        elif match.group(1) == ENTRY and name == SSL_ENTRY:
            out.append('#include "ioloop.hpp"\n')  # the single header beside this one
        elif match.group(1) not in seen:
            out.append(inline(match.group(1), seen, stack + [name]))
    out.append(f"// end file {name}\n")
    return "".join(out)


SSL_BANNER = BANNER.replace(
    "Python asyncio's event loop for C++20, in one header.",
    "TLS over OpenSSL for the single ioloop.hpp beside it (link -lssl -lcrypto).")


def build():
    """The two single headers' texts, by output path."""
    seen = set()
    main_text = BANNER + "\n" + inline(ENTRY, seen, [])
    ssl_text = SSL_BANNER + "\n" + inline(SSL_ENTRY, seen, [])
    return {OUTPUT: main_text, SSL_OUTPUT: ssl_text}


def main(argv):
    texts = build()
    if argv[1:] == ["--check"]:
        stale = 0
        for output, text in texts.items():
            current = output.read_text(encoding="utf-8") if output.is_file() else ""
            if current == text:
                continue
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                "committed/" + output.name, "generated/" + output.name))
            print(f"\n{output.relative_to(ROOT)} is stale: run tools/amalgamate.py and commit it.",
                  file=sys.stderr)
            stale = 1
        return stale
    if argv[1:]:
        sys.exit(__doc__)
    for output, text in texts.items():
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
