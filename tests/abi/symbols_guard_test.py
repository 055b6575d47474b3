#!/usr/bin/env python3
"""Proves that check_symbols.py catches each kind of export mismatch.

Usage: symbols_guard_test.py CHECK_SYMBOLS CC VARIANT

Builds a tiny shared library in a temporary directory from a two-function
header, with a symbol list, both changed as VARIANT says, runs
check_symbols.py on them and expects it to pass, or to fail naming the
offending symbol.
"""

import os
import subprocess
import sys
import tempfile

HEADER = """\
#define KTC_API __attribute__((visibility("default")))
KTC_API const char* ktc_version(void);
KTC_API void ktc_free(void* ptr);
"""

SOURCE = """\
#include <stdlib.h>

#include "ktcache.h"

const char* ktc_version(void) { return "1.0.0"; }
void ktc_free(void* ptr) { free(ptr); }
"""

SYMBOLS = "ktc_free\nktc_version\n"

VERSION_SCRIPT = "KTCACHE_1 {\n  global:\n    ktc_*;\n  local:\n    *;\n};\n"

EXTRA_FUNCTION = "int ktc_hidden_helper(void) { return 0; }\n"


def with_extra_export(case):
    case["source"] += EXTRA_FUNCTION


def with_missing_export(case):
    case["source"] = case["source"].replace(
        "void ktc_free(void* ptr) { free(ptr); }\n", "")


def without_version_node(case):
    case["version_script"] = None


def with_unsorted_list(case):
    case["symbols"] = "ktc_version\nktc_free\n"


def with_undeclared_listed(case):
    case["symbols"] = "ktc_free\nktc_list\nktc_version\n"


def with_unlisted_declaration(case):
    case["symbols"] = "ktc_version\n"


# variant -> (the change, the text check_symbols.py must print; None when
# it must pass)
VARIANTS = {
    "exact": (lambda case: None, None),
    "extra-export": (with_extra_export,
                     "ktc_hidden_helper: exported by"),
    "missing-export": (with_missing_export,
                       "ktc_free: listed but not exported"),
    "no-version-node": (without_version_node,
                        "ktc_free: not bound to KTCACHE_1"),
    "unsorted-list": (with_unsorted_list, "is not sorted"),
    "undeclared-listed": (with_undeclared_listed,
                          "ktc_list: listed in"),
    "unlisted-declaration": (with_unlisted_declaration,
                             "ktc_free: declared in"),
}


def write(path, text):
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in VARIANTS:
        raise SystemExit(f"usage: {sys.argv[0]} CHECK_SYMBOLS CC "
                         f"{{{','.join(VARIANTS)}}}")
    check_symbols, cc, variant = sys.argv[1:]
    change, expected_text = VARIANTS[variant]
    case = {"source": SOURCE, "symbols": SYMBOLS,
            "version_script": VERSION_SCRIPT}
    change(case)

    with tempfile.TemporaryDirectory(prefix="symbols-guard-") as work:
        header = os.path.join(work, "ktcache.h")
        symbols = os.path.join(work, "libktcache.symbols")
        source = os.path.join(work, "lib.c")
        library = os.path.join(work, "libktcache.so")
        write(header, HEADER)
        write(symbols, case["symbols"])
        write(source, case["source"])
        command = [cc, "-std=c99", "-fPIC", "-shared", "-I", work,
                   "-fvisibility=hidden", "-o", library, source]
        if case["version_script"] is not None:
            version_script = os.path.join(work, "lib.map")
            write(version_script, case["version_script"])
            command.append("-Wl,--version-script=" + version_script)
        if variant == "extra-export":
            # Exported by default visibility, as a slip in the core would.
            command.remove("-fvisibility=hidden")
        subprocess.run(command, check=True)
        result = subprocess.run(
            [sys.executable, check_symbols, library, symbols, header,
             "KTCACHE_1"],
            capture_output=True, text=True)
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)

    if expected_text is None:
        if result.returncode != 0:
            print(f"FAIL: {variant}: check_symbols.py exited "
                  f"{result.returncode}, expected 0")
            return 1
    elif result.returncode != 1 or expected_text not in result.stdout:
        print(f"FAIL: {variant}: check_symbols.py exited "
              f"{result.returncode} without reporting {expected_text!r}")
        return 1
    print(f"ok: {variant}: check_symbols.py exited {result.returncode} "
          f"as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
