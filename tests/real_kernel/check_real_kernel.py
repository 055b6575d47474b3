#!/usr/bin/env python3
"""`ktcache strip` of the real Debian vmlinux, checked with outside tools.

Usage: check_real_kernel.py KTCACHE PLUGIN_DIR POLICY

POLICY btf: `bpftool btf dump file` of the output succeeds and prints the
input's types; `nm` lists the same named symbols (name, address, type:
a data symbol whose section became header-only may read `b`/`B`, see
nm_differences); the output is at most 16 MiB; `ktcache kconfig --get
CONFIG_HZ` agrees, or refuses both alike when the kernel embeds no config
(Debian's do not; skipped when the CLI has no kconfig command); the
build-id (`readelf -n`) is the input's.

POLICY debug: eu-elflint --gnu-ld finds nothing in the output it does not
find in the input (it has complaints about every kernel); `readelf -aW`
parses it without a warning; the output is no larger than `eu-strip
--strip-debug`'s; nm lists the same symbols, types included; same build-id.

The vmlinux is $KTCACHE_VMLINUX, else the newest vmlinux-* in
$KTCACHE_ARTIFACTS (default ~/.cache/ktcache-artifacts, where
fetch-kernel-artifacts puts it). Exits 77 (skipped) when there is none,
1 when a check fails.
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX_BTF_OUTPUT = 16 * 1024 * 1024
# nm's letter for a symbol in a section with contents (read-only data, data,
# small data) -> its letter once the section has none (bss, small bss).
NOBITS_TYPES = {"r": "b", "d": "b", "g": "s"}


class CheckFailed(Exception):
    pass


def find_vmlinux():
    path = os.environ.get("KTCACHE_VMLINUX")
    if path:
        return path if os.path.isfile(path) else None
    artifacts = os.environ.get("KTCACHE_ARTIFACTS") or os.path.join(
        os.path.expanduser("~"), ".cache", "ktcache-artifacts")
    candidates = sorted(glob.glob(os.path.join(artifacts, "vmlinux-*")))
    return candidates[-1] if candidates else None


def find_tool(name):
    # bpftool lives in /usr/sbin, which a non-root PATH may lack.
    found = shutil.which(name) or shutil.which(
        name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise CheckFailed(f"{name} not found: run tools/install-deps")
    return found


def run(command, check=True):
    result = subprocess.run(command, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            errors="replace")
    if check and result.returncode != 0:
        raise CheckFailed(f"`{' '.join(command)}` exited with status "
                          f"{result.returncode}: {result.stderr.strip()}")
    return result


def nm_symbols(path):
    """The named symbols as {(name, address): type}; undefined ones (no
    address) as (name, None). Duplicates keep every type seen."""
    symbols = {}
    for line in run([find_tool("nm"), path]).stdout.splitlines():
        fields = line.split()
        if len(fields) == 3:
            address, kind, name = fields
        elif len(fields) == 2:
            address, (kind, name) = None, fields
        else:
            continue
        symbols.setdefault((name, address), set()).add(kind)
    return symbols


def nobits_form(kind):
    """The letter nm gives a data symbol once its section is SHT_NOBITS."""
    mapped = NOBITS_TYPES.get(kind.lower())
    if mapped is None:
        return kind
    return mapped.upper() if kind.isupper() else mapped


def nm_differences(before, after, allow_nobits):
    """Lines describing how `after` differs from `before`, in name order.

    With allow_nobits a data symbol (r/d/g) may turn bss-like (b/s) in the
    same case: the btf policy keeps allocated sections as headers only
    (SHT_NOBITS), and nm derives the letter from the section type.
    """
    problems = []
    for key in sorted(before.keys() - after.keys(), key=str):
        problems.append(f"missing in the output: {key[0]} at {key[1]}")
    for key in sorted(after.keys() - before.keys(), key=str):
        problems.append(f"only in the output: {key[0]} at {key[1]}")
    for key in sorted(before.keys() & after.keys(), key=str):
        kinds, out_kinds = before[key], after[key]
        if kinds == out_kinds:
            continue
        allowed = set(kinds)
        if allow_nobits:
            allowed |= {nobits_form(kind) for kind in kinds}
        if len(out_kinds) != len(kinds) or not out_kinds <= allowed:
            problems.append(
                f"type of {key[0]} at {key[1]}: {''.join(sorted(kinds))}"
                f" in the input, {''.join(sorted(out_kinds))} in the output")
    return problems


def build_id(path):
    text = run([find_tool("readelf"), "-nW", path]).stdout
    ids = re.findall(r"Build ID:\s*([0-9a-f]+)", text)
    if not ids:
        raise CheckFailed(f"readelf -n finds no build-id in {path}")
    return ids[0]


def strip(ktcache, plugin_dir, work, vmlinux, policy):
    output = os.path.join(work, f"vmlinux.{policy}")
    run([ktcache, "--cache-dir", os.path.join(work, "cache"), "--plugin-dir",
         plugin_dir, "strip", vmlinux, "-o", output, "--policy", policy,
         "--json"])
    return output


def kconfig_get(ktcache, work, path, name):
    result = run([ktcache, "--cache-dir", os.path.join(work, "cache"),
                  "kconfig", path, "--get", name], check=False)
    return result.returncode, result.stdout.strip(), result.stderr.strip()


def check_common(vmlinux, output, allow_nobits, problems):
    before = build_id(vmlinux)
    after = build_id(output)
    if before != after:
        problems.append(f"build-id {after} is not the input's {before}")
    else:
        print(f"ok: build-id {after}")

    input_symbols = nm_symbols(vmlinux)
    differences = nm_differences(input_symbols, nm_symbols(output),
                                 allow_nobits)
    if differences:
        problems.append(f"nm: {len(differences)} difference(s), first: "
                        + "; ".join(differences[:10]))
    else:
        print(f"ok: nm lists the same {len(input_symbols)} symbols")


def check_btf(ktcache, plugin_dir, work, vmlinux):
    problems = []
    output = strip(ktcache, plugin_dir, work, vmlinux, "btf")
    size = os.path.getsize(output)
    print(f"{vmlinux}: {os.path.getsize(vmlinux)} bytes -> {size} bytes")
    if size > MAX_BTF_OUTPUT:
        problems.append(f"output is {size} bytes, more than "
                        f"{MAX_BTF_OUTPUT} (16 MiB)")

    bpftool = find_tool("bpftool")
    dumps = {}
    for name, path in (("input", vmlinux), ("output", output)):
        result = run([bpftool, "btf", "dump", "file", path], check=False)
        types = sum(1 for line in result.stdout.splitlines()
                    if re.match(r"\[\d+\] ", line))
        if result.returncode != 0 or types == 0:
            problems.append(f"bpftool btf dump file of the {name} exited "
                            f"{result.returncode} with {types} types: "
                            f"{result.stderr.strip()[:300]}")
        dumps[name] = (hashlib.sha256(result.stdout.encode()).hexdigest(),
                       types)
    if dumps["input"] != dumps["output"]:
        problems.append(f"bpftool prints {dumps['output'][1]} types for the "
                        f"output, not the input's {dumps['input'][1]} (or "
                        f"they differ)")
    else:
        print(f"ok: bpftool dumps the same {dumps['output'][1]} types")

    check_common(vmlinux, output, True, problems)

    status, value, error = kconfig_get(ktcache, work, vmlinux, "CONFIG_HZ")
    if 'unknown command "kconfig"' in error:
        print("note: this ktcache has no kconfig command; CONFIG_HZ not "
              "compared")
    else:
        out_status, out_value, out_error = kconfig_get(ktcache, work, output,
                                                       "CONFIG_HZ")
        # Debian's kernels have no CONFIG_IKCONFIG: then the output must be
        # refused the same way (the message names the file, so compare it
        # without the path).
        same_error = (error.replace(vmlinux, "FILE")
                      == out_error.replace(output, "FILE"))
        if (out_status, out_value) != (status, value) or not same_error:
            problems.append(f"ktcache kconfig --get CONFIG_HZ: {out_value!r}"
                            f" (status {out_status}, {out_error!r}) for the "
                            f"output, {value!r} (status {status}, "
                            f"{error!r}) for the input")
        elif status != 0:
            print(f"ok: kconfig refuses both alike: {error}")
        else:
            print(f"ok: CONFIG_HZ {value}")
    return problems


def elflint_complaints(path):
    result = run([find_tool("eu-elflint"), "--gnu-ld", path], check=False)
    # Section and symbol indices move when sections go; the complaint
    # itself must not be new.
    lines = set()
    for line in (result.stdout + result.stderr).splitlines():
        line = re.sub(r"\[\s*\d+\]", "[N]", line)
        line = re.sub(r"symbol \d+", "symbol N", line)
        lines.add(line.strip())
    lines.discard("")
    return lines


def check_debug(ktcache, plugin_dir, work, vmlinux):
    problems = []
    output = strip(ktcache, plugin_dir, work, vmlinux, "debug")
    size = os.path.getsize(output)
    reference = os.path.join(work, "vmlinux.eu-strip")
    run([find_tool("eu-strip"), "--strip-debug", "-o", reference, vmlinux])
    reference_size = os.path.getsize(reference)
    print(f"{vmlinux}: {os.path.getsize(vmlinux)} bytes -> {size} bytes "
          f"(eu-strip --strip-debug: {reference_size})")
    if size > reference_size:
        problems.append(f"output is {size} bytes, more than eu-strip "
                        f"--strip-debug's {reference_size}")
    os.unlink(reference)

    new = sorted(elflint_complaints(output) - elflint_complaints(vmlinux))
    if new:
        problems.append(f"eu-elflint --gnu-ld: {len(new)} complaint(s) the "
                        f"input does not have, first: " + "; ".join(new[:5]))
    else:
        print("ok: eu-elflint finds nothing new")

    readelf = run([find_tool("readelf"), "-aW", output], check=False)
    warnings = [line for line in readelf.stderr.splitlines() if line.strip()]
    if readelf.returncode != 0 or warnings:
        problems.append(f"readelf -aW exited {readelf.returncode}: "
                        + "; ".join(warnings[:5]))
    else:
        print("ok: readelf -aW parses it cleanly")

    check_common(vmlinux, output, False, problems)
    return problems


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("btf", "debug"):
        raise SystemExit(__doc__)
    ktcache, plugin_dir, policy = sys.argv[1:]
    vmlinux = find_vmlinux()
    if vmlinux is None:
        print("skipped: no real vmlinux (set KTCACHE_VMLINUX, or run "
              "/work/shared/tools/fetch-kernel-artifacts)")
        return 77
    with tempfile.TemporaryDirectory(prefix="ktc-real-kernel-") as work:
        try:
            check = check_btf if policy == "btf" else check_debug
            problems = check(ktcache, plugin_dir, work, vmlinux)
        except CheckFailed as failure:
            problems = [str(failure)]
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
