#!/usr/bin/env python3
"""Proves that tools/abi-check passes additions and catches breaks.

Usage: abi_guard_test.py ABI_CHECK CC VARIANT

Builds two tiny shared libraries in a temporary directory from a header
shaped like ktcache.h: the baseline, and the baseline changed as VARIANT
says. Takes the baseline's ABI with `abi-check --update`, then checks the
changed library against it and expects the exit status the variant calls
for. Exits 77 when abidw or abidiff is not installed.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HEADER = """\
#ifndef KTCACHE_KTCACHE_H
#define KTCACHE_KTCACHE_H
#include <stddef.h>
#include <stdint.h>

typedef struct ktc_cache ktc_cache;

typedef struct ktc_store_options {
  uint32_t struct_size;
  uint32_t flags;
  const char* image;
  const char* vmlinux;
} ktc_store_options;

const char* ktc_version(void);
int ktc_store(ktc_cache* cache, const char* key,
              const ktc_store_options* options);
size_t ktc_list_count(const ktc_cache* cache);
void ktc_free(void* ptr);

#endif
"""

SOURCE = """\
#include <stdlib.h>

#include "ktcache/ktcache.h"

struct ktc_cache {
  int unused;
};

const char* ktc_version(void) { return "1.0.0"; }

int ktc_store(ktc_cache* cache, const char* key,
              const ktc_store_options* options) {
  return cache != NULL && key != NULL && options != NULL
             ? (int)options->flags
             : -2;
}

size_t ktc_list_count(const ktc_cache* cache) { return cache ? 1 : 0; }

void ktc_free(void* ptr) { free(ptr); }
"""

VERSION_SCRIPT = "KTCACHE_1 {\n  global:\n    ktc_*;\n  local:\n    *;\n};\n"

PASS, INCOMPATIBLE, ERROR = 0, 1, 2


def edit(text, old, new):
    # A fixture edit that silently matched nothing would prove nothing.
    if old not in text:
        raise SystemExit(f"fixture edit found no {old!r}")
    return text.replace(old, new, 1)


def added_function(header, source):
    return (
        edit(header, "void ktc_free(void* ptr);",
             "void ktc_free(void* ptr);\nint ktc_verify(ktc_cache* cache);"),
        source
        + "\nint ktc_verify(ktc_cache* cache) { return cache ? 0 : -2; }\n",
    )


def appended_field(header, source):
    return (
        edit(header, "  const char* vmlinux;\n",
             "  const char* vmlinux;\n  const char* config;\n"),
        source,
    )


def inserted_field(header, source):
    return (
        edit(header, "  uint32_t flags;\n",
             "  uint32_t flags;\n  uint32_t mode;\n"),
        source,
    )


def changed_parameter(header, source):
    old = "size_t ktc_list_count(const ktc_cache* cache)"
    new = "size_t ktc_list_count(const ktc_cache* cache, uint32_t flags)"
    return (
        edit(header, old, new),
        edit(source, old + " { return cache ? 1 : 0; }",
             new + " { return cache ? flags : 0; }"),
    )


def changed_return_type(header, source):
    return (
        edit(header, "size_t ktc_list_count", "uint32_t ktc_list_count"),
        edit(source, "size_t ktc_list_count", "uint32_t ktc_list_count"),
    )


def removed_function(header, source):
    return (
        edit(header, "void ktc_free(void* ptr);\n", ""),
        edit(source, "\nvoid ktc_free(void* ptr) { free(ptr); }\n", ""),
    )


def unchanged(header, source):
    return header, source


# variant -> (how the library changes, whether it keeps debug info, the
# exit status abi-check must give)
VARIANTS = {
    "unchanged": (unchanged, True, PASS),
    "added-function": (added_function, True, PASS),
    "appended-field": (appended_field, True, PASS),
    "inserted-field": (inserted_field, True, INCOMPATIBLE),
    "changed-parameter": (changed_parameter, True, INCOMPATIBLE),
    "changed-return-type": (changed_return_type, True, INCOMPATIBLE),
    "removed-function": (removed_function, True, INCOMPATIBLE),
    "no-debug-info": (unchanged, False, ERROR),
}


def build_library(cc, work, name, header, source, debug_info):
    root = os.path.join(work, name)
    os.makedirs(os.path.join(root, "include", "ktcache"))
    with open(os.path.join(root, "include", "ktcache", "ktcache.h"), "w",
              encoding="utf-8") as out:
        out.write(header)
    with open(os.path.join(root, "lib.c"), "w", encoding="utf-8") as out:
        out.write(source)
    with open(os.path.join(root, "lib.map"), "w", encoding="utf-8") as out:
        out.write(VERSION_SCRIPT)
    library = os.path.join(root, "libktcache.so")
    command = [cc, "-std=c99", "-O2", "-fPIC", "-shared",
               "-I", os.path.join(root, "include"),
               "-Wl,--version-script=" + os.path.join(root, "lib.map"),
               "-Wl,-soname,libktcache.so.1",
               "-o", library, os.path.join(root, "lib.c")]
    if debug_info:
        command.insert(1, "-g")
    subprocess.run(command, check=True)
    return library, os.path.join(root, "include", "ktcache")


def run_abi_check(abi_check, *args):
    result = subprocess.run([sys.executable, abi_check, *args],
                            capture_output=True, text=True)
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    return result.returncode


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in VARIANTS:
        raise SystemExit(
            f"usage: {sys.argv[0]} ABI_CHECK CC "
            f"{{{','.join(VARIANTS)}}}")
    abi_check, cc, variant = sys.argv[1:]
    if shutil.which("abidw") is None or shutil.which("abidiff") is None:
        print("abidw or abidiff not installed: skipped")
        return 77

    change, debug_info, expected = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="abi-guard-") as work:
        base_lib, base_headers = build_library(cc, work, "baseline", HEADER,
                                               SOURCE, True)
        baseline = os.path.join(work, "baseline.abi")
        status = run_abi_check(abi_check, "--update", baseline, base_lib,
                               base_headers)
        if status != PASS:
            print(f"FAIL: writing the baseline exited {status}")
            return 1

        header, source = change(HEADER, SOURCE)
        lib, headers = build_library(cc, work, "changed", header, source,
                                     debug_info)
        status = run_abi_check(abi_check, baseline, lib, headers)
    if status != expected:
        print(f"FAIL: {variant}: abi-check exited {status}, "
              f"expected {expected}")
        return 1
    print(f"ok: {variant}: abi-check exited {status} as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
