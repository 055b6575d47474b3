#!/usr/bin/env python3
"""Proves that abi/plugin.abi catches a broken plugin ABI.

Usage: plugin_abi_guard_test.py ABI_CHECK CC PROBE_SOURCE HEADERS_DIR \\
           BASELINE VARIANT

Copies plugin.h from HEADERS_DIR into a temporary directory, changes it as
VARIANT says, compiles the ABI probe (tests/abi/plugin_abi_probe.c) against
the copy and checks it with tools/abi-check against BASELINE (the real
abi/plugin.abi), expecting the exit status the variant calls for:
  unchanged         the header as it is: 0 (the probe built here has the
                    baseline's ABI, so the other verdicts are about the
                    edit, not about how the probe was built)
  inserted-member   a member before ktc_source_ops.resolve: 1
  appended-member   a member at the end of ktc_source_ops, which the
                    struct_size convention allows: 0
Exits 77 when abidw or abidiff is not installed.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

PASS, INCOMPATIBLE = 0, 1


def edit(text, old, new):
    # A fixture edit that silently matched nothing would prove nothing.
    if text.count(old) != 1:
        raise SystemExit(f"fixture edit: {old!r} occurs {text.count(old)} "
                         f"times in plugin.h, expected once")
    return text.replace(old, new, 1)


def unchanged(header):
    return header


def inserted_member(header):
    return edit(header, "  int (*resolve)(void* state,",
                "  uint32_t inserted;\n  int (*resolve)(void* state,")


def appended_member(header):
    return edit(header, "} ktc_source_ops;",
                "  int (*appended)(void* state, ktc_plugin_call* call);\n"
                "} ktc_source_ops;")


VARIANTS = {
    "unchanged": (unchanged, PASS),
    "inserted-member": (inserted_member, INCOMPATIBLE),
    "appended-member": (appended_member, PASS),
}


def baseline_soname(baseline):
    # abidiff counts a different soname as an incompatible change, so the
    # probe built here carries the one meson gave the baseline's probe.
    with open(baseline, encoding="utf-8") as source:
        match = re.search(r"<abi-corpus\b[^>]*\bsoname='([^']+)'",
                          source.read())
    if match is None:
        raise SystemExit(f"no soname in {baseline}")
    return match.group(1)


def run_abi_check(abi_check, *args):
    result = subprocess.run([sys.executable, abi_check, *args],
                            capture_output=True, text=True)
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    return result.returncode


def main():
    if len(sys.argv) != 7 or sys.argv[6] not in VARIANTS:
        raise SystemExit(
            f"usage: {sys.argv[0]} ABI_CHECK CC PROBE_SOURCE HEADERS_DIR "
            f"BASELINE {{{','.join(VARIANTS)}}}")
    abi_check, cc, probe, headers_dir, baseline, variant = sys.argv[1:]
    if shutil.which("abidw") is None or shutil.which("abidiff") is None:
        print("abidw or abidiff not installed: skipped")
        return 77

    change, expected = VARIANTS[variant]
    with open(os.path.join(headers_dir, "plugin.h"), encoding="utf-8") as f:
        header = change(f.read())
    with tempfile.TemporaryDirectory(prefix="plugin-abi-guard-") as work:
        include = os.path.join(work, "include")
        edited_dir = os.path.join(include, "ktcache")
        os.makedirs(edited_dir)
        with open(os.path.join(edited_dir, "plugin.h"), "w",
                  encoding="utf-8") as out:
            out.write(header)
        library = os.path.join(work, "probe.so")
        subprocess.run(
            [cc, "-std=c99", "-g", "-O2", "-fPIC", "-shared",
             "-Wl,-soname," + baseline_soname(baseline), "-I", include,
             "-o", library, probe],
            check=True)
        status = run_abi_check(abi_check, baseline, library, edited_dir)
    if status != expected:
        print(f"FAIL: {variant}: abi-check exited {status}, "
              f"expected {expected}")
        return 1
    print(f"ok: {variant}: abi-check exited {status} as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
