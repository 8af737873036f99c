#!/usr/bin/env python3
"""README.md's QEMU command lines are the ones the qemu suite runs.

    readme_check.py README.md [--qemu qemu-system-x86_64] [--print]

Every block in README.md that follows a `<!-- qemu-cmdline: NAME -->` line
must equal what the tests build for NAME (qemu_snd_test.readme_cmdlines(),
qemu_rng_test.readme_cmdlines(): the same functions give the tests their
QEMU arguments), every NAME the tests define must appear, and the
`<!-- qemu-checked: VERSION -->` line must name the major.minor of the QEMU
installed here, the one the suite runs.  --print prints the blocks.
Exit status 0 when all match, 1 otherwise (77 if QEMU is missing, unless
CI is set).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_rng_test  # noqa: E402
import qemu_snd_test  # noqa: E402

MARK_RE = re.compile(r"^<!-- qemu-cmdline: (\S+) -->\n```sh\n(.*?)\n```", re.M | re.S)
CHECKED_RE = re.compile(r"^<!-- qemu-checked: (\d+)\.(\d+)\S* -->$", re.M)


def expected():
    out = dict(qemu_rng_test.readme_cmdlines())
    out.update(qemu_snd_test.readme_cmdlines())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("readme")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--print", action="store_true")
    a = ap.parse_args()
    want = expected()
    if a.print:
        for k, v in want.items():
            print(f"<!-- qemu-cmdline: {k} -->\n```sh\n{v}\n```\n")
        return 0
    with open(a.readme) as f:
        text = f.read()
    got = {m.group(1): m.group(2) for m in MARK_RE.finditer(text)}
    bad = 0
    for k in sorted(set(want) | set(got)):
        if k not in got:
            print(f"README: no block for '{k}'; it must show:\n{want[k]}")
            bad += 1
        elif k not in want:
            print(f"README: block '{k}' is not a command line any test runs")
            bad += 1
        elif got[k] != want[k]:
            print(f"README: block '{k}' differs from what the test runs:\n--- README\n{got[k]}\n"
                  f"--- test\n{want[k]}")
            bad += 1
    qemu = shutil.which(a.qemu)
    if not qemu:
        print(f"{a.qemu} not found")
        return 1 if os.environ.get("CI") else 77
    ver = subprocess.run([qemu, "--version"], stdout=subprocess.PIPE, text=True).stdout
    m = re.search(r"version (\d+)\.(\d+)", ver)
    checked = CHECKED_RE.findall(text)
    if not m or not checked:
        print(f"README: no '<!-- qemu-checked: X.Y -->' line, or no version from {qemu}")
        bad += 1
    elif any((x, y) != m.groups() for x, y in checked):
        print(f"README says its command lines were checked with QEMU "
              f"{', '.join('.'.join(c) for c in checked)}, the suite runs {ver.splitlines()[0]}: "
              "run the qemu suite with it and update README.md")
        bad += 1
    print(f"{len(want)} command line(s), {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
