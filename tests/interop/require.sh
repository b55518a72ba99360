#!/usr/bin/env bash
# require.sh TOOL COMMAND...: runs COMMAND if TOOL is installed (TOOL may name several,
# joined by commas: python3,openssl). If one is not, exits 77, which CTest reports as a skip
# (the tests' SKIP_RETURN_CODE), never as a pass; a 77 from COMMAND itself is turned into a
# plain failure, so that only a missing tool skips.
#   require.sh --may-skip TOOL COMMAND...: COMMAND's own 77 is a skip too (it found the
#   system without a feature it needs, and said which).
may_skip=0
if [ "$1" == "--may-skip" ]; then
  may_skip=1
  shift
fi
tools="$1"
shift
for tool in ${tools//,/ }; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIPPED: $tool is not installed"
    exit 77
  fi
done
"$@"
rc=$?
[ "$rc" -ne 77 ] || [ "$may_skip" -eq 1 ] || rc=1
exit "$rc"
