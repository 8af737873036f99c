#!/usr/bin/env python3
"""Count test cases across meson test logs and print 'N passed, N failed'.

A Catch2 program counts as the test cases it ran (from its summary line); any
other test program counts as one case. A program that failed without a
Catch2 summary saying so (crash, time-out) adds one failure.

Each failure is followed by a few lines saying why (Catch2's failed
assertion, or the end of the program's output) so that the tail of a CI log
is enough to start on it.
"""
import json
import re
import sys

ALL_PASSED = re.compile(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)")
CASES = re.compile(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
NO_CASES = re.compile(r"No tests ran")

def why(out, limit=6):
    """The lines that say why a test program failed, at most `limit`."""
    lines = [l.rstrip() for l in out.splitlines()]
    for i, line in enumerate(lines):
        if ": FAILED:" in line:
            case = ""
            for j in range(i - 1, 0, -1):
                if lines[j].startswith("-----") and lines[j - 1].startswith("-----"):
                    break
                if lines[j].startswith("-----") and j + 1 < len(lines):
                    case = lines[j + 1]
            body = [l for l in lines[i:i + 8] if l.strip() and not l.startswith("====")]
            return ([f"  in {case}"] if case else []) + ["  " + l for l in body[:limit - 1]]
    tail = [l for l in lines if l.strip()][-limit:]
    return ["  " + l for l in tail]


def where(path):
    """The build directory a testlog.json belongs to."""
    parts = path.split("/")
    return parts[-3] if len(parts) >= 3 and parts[-2] == "meson-logs" else path


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
        out = (entry.get("stdout", "") or "") + "\n" + (entry.get("stderr", "") or "")
        name = f"{name} [{where(path)}]"
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
                failures.append((name, out))
        elif c:
            passed += int(c.group(2))
            failed += int(c.group(3))
            if int(c.group(3)) or not ok:
                failures.append((name, out))
            if not ok and int(c.group(3)) == 0:
                failed += 1
        elif NO_CASES.search(out):
            failed += 1
            failures.append((name + " (ran no test case)", out))
        elif ok:
            passed += 1
        else:
            failed += 1
            failures.append((name, out))

for name, out in failures:
    print(f"FAILED: {name}")
    for line in why(out):
        print(line[:300])
tail = f", {skipped} skipped" if skipped else ""
print(f"{passed} passed, {failed} failed{tail}")
sys.exit(1 if failed or passed == 0 else 0)
