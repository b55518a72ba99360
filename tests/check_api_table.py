"""Keeps the README's table of asyncio's loop API true: every name in backticks in the
ioloop column of "## Every method of asyncio's loop" must be a name the single header
declares. Rows that say "not provided" are skipped.
    python3 check_api_table.py README.md single_include/ioloop/ioloop.hpp"""
import re
import sys


def main():
    readme, header = (open(p, encoding="utf-8").read() for p in sys.argv[1:3])
    section = readme.split("## Every method of asyncio's loop", 1)
    if len(section) < 2:
        sys.exit("check_api_table: the README has no section \"Every method of asyncio's loop\"")
    rows = [line for line in section[1].split("\n## ", 1)[0].splitlines() if line.startswith("| `")]
    checked, missing = 0, []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) < 2 or cells[1].startswith("not provided"):
            continue
        for code in re.findall(r"`([^`]+)`", cells[1]):
            # The name called or named: the last identifier before "(" or "<", or the last
            # one of a qualified name (ioloop::run -> run, loop.x -> x).
            head = re.split(r"[(<{]", code, 1)[0].strip()
            name = re.split(r"::|\.", head)[-1].strip()
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                continue
            checked += 1
            if not re.search(r"\b" + name + r"\b", header):
                missing.append(f"{name} (row: {cells[0]})")
    if missing:
        sys.exit("check_api_table: not in the header: " + "; ".join(missing))
    if checked < 80:
        sys.exit(f"check_api_table: only {checked} names found in the table; is it intact?")
    print(f"check_api_table: {checked} names of the README's table are in the header")


main()
