#!/usr/bin/env python3
"""Checks what libktcache.so exports against abi/libktcache.symbols.

Usage: check_symbols.py LIB.so SYMBOLS_LIST HEADER VERSION_NODE

Fails, naming each offending symbol, when:
  - the list is not sorted, has duplicates or a name that is not ktc_*;
  - a ktc_* function declared (KTC_API) in HEADER is missing from the list,
    or the list names a function HEADER does not declare;
  - the library exports a symbol the list lacks, or lacks a listed one
    (`nm -D --defined-only`);
  - a listed symbol is not bound to VERSION_NODE as its default version
    (`readelf --dyn-syms` shows name@@VERSION_NODE).
"""

import re
import subprocess
import sys

DECLARATION = re.compile(r"\bKTC_API\b[^;{}()]*?\b(ktc_\w+)\s*\(")


def read_list(path, problems):
    with open(path, encoding="utf-8") as listing:
        names = [line.strip() for line in listing if line.strip()]
    if not names:
        problems.append(f"{path} is empty")
    if names != sorted(names):
        problems.append(f"{path} is not sorted")
    seen = set()
    for name in names:
        if name in seen:
            problems.append(f"{path} lists {name} twice")
        seen.add(name)
        if not re.fullmatch(r"ktc_\w+", name):
            problems.append(f"{path} lists {name}, which is not ktc_*")
    return seen


def declared_functions(header):
    with open(header, encoding="utf-8") as source:
        text = source.read()
    # Comments could mention "KTC_API ktc_x(" in prose; drop them first.
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return set(DECLARATION.findall(text))


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr}")
    return result.stdout


def exported_symbols(library, version_node):
    exported = set()
    for line in run(["nm", "-D", "--defined-only", library]).splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        kind, name = fields[1], fields[2].split("@")[0]
        # The version script's node is itself an absolute dynamic symbol.
        if kind == "A" and name == version_node:
            continue
        exported.add(name)
    return exported


def versioned_symbols(library, version_node):
    bound = set()
    for line in run(["readelf", "--dyn-syms", "--wide", library]).splitlines():
        fields = line.split()
        if fields and fields[-1].endswith("@@" + version_node):
            bound.add(fields[-1][: -len("@@" + version_node)])
    return bound


def compare(problems, have, want, what_extra, what_missing):
    for name in sorted(have - want):
        problems.append(f"{name}: {what_extra}")
    for name in sorted(want - have):
        problems.append(f"{name}: {what_missing}")


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    library, symbols_list, header, version_node = sys.argv[1:]
    problems = []

    listed = read_list(symbols_list, problems)
    compare(problems, declared_functions(header), listed,
            f"declared in {header} but missing from {symbols_list}",
            f"listed in {symbols_list} but not declared in {header}")
    exported = exported_symbols(library, version_node)
    compare(problems, exported, listed,
            f"exported by {library} but not listed",
            f"listed but not exported by {library}")
    unversioned = (listed & exported) - versioned_symbols(library,
                                                          version_node)
    for name in sorted(unversioned):
        problems.append(f"{name}: not bound to {version_node} "
                        f"(no {name}@@{version_node})")

    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        return 1
    print(f"ok: {len(listed)} symbols exported, all at @@{version_node}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
