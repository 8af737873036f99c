#!/usr/bin/env python3
"""Count test cases across meson test logs and print 'N passed, N failed'.

A Catch2 program counts as the test cases it ran (from its summary line); any
other test program counts as one case. A program that failed without a
Catch2 summary saying so (crash, time-out) adds one failure.
"""
import json
import re
import sys

ALL_PASSED = re.compile(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)")
CASES = re.compile(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
NO_CASES = re.compile(r"No tests ran")

passed = failed = skipped = 0
failures = []
for path in sys.argv[1:]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"test-summary: cannot read {path}: {e}", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        entry = json.loads(line)
        name = entry.get("name", "?")
        result = entry.get("result", "")
        out = entry.get("stdout", "") or ""
        ok = result in ("OK", "EXPECTEDFAIL")
        if result == "SKIP":
            skipped += 1
            continue
        m = ALL_PASSED.search(out)
        c = CASES.search(out)
        if m:
            passed += int(m.group(2))
            if not ok:
                failed += 1
                failures.append(name)
        elif c:
            passed += int(c.group(2))
            failed += int(c.group(3))
            if int(c.group(3)) or not ok:
                failures.append(name)
            if not ok and int(c.group(3)) == 0:
                failed += 1
        elif NO_CASES.search(out):
            failed += 1
            failures.append(name + " (ran no test case)")
        elif ok:
            passed += 1
        else:
            failed += 1
            failures.append(name)

for f in failures:
    print(f"FAILED: {f}")
tail = f", {skipped} skipped" if skipped else ""
print(f"{passed} passed, {failed} failed{tail}")
sys.exit(1 if failed or passed == 0 else 0)
