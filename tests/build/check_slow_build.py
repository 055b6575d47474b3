#!/usr/bin/env python3
"""A real tinyconfig kernel through `ktcache build`, then a cache hit.

Usage: check_slow_build.py KTCACHE PLUGIN_DIR

In a fresh cache directory:
  ktcache build tarball:<linux-source-6.1.tar.xz> --base-config tinyconfig
      --kconfig-set CONFIG_64BIT=y --kconfig-set CONFIG_IKCONFIG=y
      --kconfig-set CONFIG_HZ=250
must exit 0 and print the entry directory (<root>/<key>) last; then
`ktcache kconfig KEY --get CONFIG_HZ` prints 250, `ktcache verify KEY`
passes, `ktcache list --json` has the entry with source type tarball, and
the same build again with --json reports "outcome": "hit" for the same
entry in under 5 seconds.

The tarball is Debian's linux-source-6.1 (fetch-kernel-artifacts unpacks
it): $KTCACHE_SOURCE_TARBALL, else $KTCACHE_ARTIFACTS (the tarball itself,
or the directory holding linux-source-6.1.tar.xz), else
~/.cache/ktcache-artifacts/linux-source-6.1.tar.xz. Exits 77 (skipped)
when there is none, 1 when a check fails. The build takes a few minutes on
2 cores; its progress goes to stderr.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

TARBALL_NAME = "linux-source-6.1.tar.xz"
HIT_SECONDS = 5.0
# What a kernel build needs beyond a compiler (tools/install-deps installs
# them): without one the build fails, which would read as a ktcache bug.
BUILD_TOOLS = ("make", "gcc", "flex", "bison", "bc", "perl", "xz")


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def find_tarball():
    explicit = os.environ.get("KTCACHE_SOURCE_TARBALL")
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    artifacts = os.environ.get("KTCACHE_ARTIFACTS") or os.path.join(
        os.path.expanduser("~"), ".cache", "ktcache-artifacts")
    if os.path.isfile(artifacts):
        return artifacts
    path = os.path.join(artifacts, TARBALL_NAME)
    return path if os.path.isfile(path) else None


class Cli:
    def __init__(self, ktcache, plugin_dir, cache):
        self.base = [ktcache, "--cache-dir", cache, "--plugin-dir", plugin_dir]

    def run(self, *args, stream_stderr=False):
        """(exit status, stdout, stderr, seconds); stderr goes straight to
        ours when streamed (the build's progress)."""
        argv = self.base + list(args)
        print("+ " + " ".join(argv), file=sys.stderr, flush=True)
        started = time.monotonic()
        done = subprocess.run(
            argv, stdout=subprocess.PIPE,
            stderr=None if stream_stderr else subprocess.PIPE, text=True,
            check=False)
        seconds = time.monotonic() - started
        return done.returncode, done.stdout, done.stderr or "", seconds


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    ktcache, plugin_dir = (os.path.abspath(arg) for arg in sys.argv[1:])
    tarball = find_tarball()
    if tarball is None:
        print("skipped: no Debian linux-source tarball: set "
              "KTCACHE_SOURCE_TARBALL, or fetch it into "
              "~/.cache/ktcache-artifacts (or $KTCACHE_ARTIFACTS) with "
              "fetch-kernel-artifacts", file=sys.stderr)
        return 77
    tarball = os.path.abspath(tarball)
    missing = [tool for tool in BUILD_TOOLS if not shutil.which(tool)]
    if missing:
        print(f"FAIL: a kernel build needs {', '.join(missing)}: run "
              "tools/install-deps", file=sys.stderr)
        return 1

    work = tempfile.mkdtemp(prefix="ktc-slow-build-")
    try:
        return run_checks(Cli(ktcache, plugin_dir, os.path.join(work, "cache")),
                          os.path.join(work, "cache"), tarball)
    except CheckFailed as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_checks(cli, cache, tarball):
    build = ["build", "tarball:" + tarball, "--base-config", "tinyconfig",
             "--kconfig-set", "CONFIG_64BIT=y",
             "--kconfig-set", "CONFIG_IKCONFIG=y",
             "--kconfig-set", "CONFIG_HZ=250"]

    rc, out, _, built_seconds = cli.run(*build, stream_stderr=True)
    check(rc == 0, f"ktcache build exited {rc}")
    entry = last_line(out)
    check(os.path.isabs(entry) and os.path.isdir(entry),
          f"the build's last line is not an entry directory: {entry!r}")
    check(os.path.realpath(os.path.dirname(entry)) == os.path.realpath(cache),
          f"the entry {entry} is not in the cache {cache}")
    key = os.path.basename(entry)
    print(f"built {key} in {built_seconds:.1f} s", flush=True)

    rc, out, err, _ = cli.run("kconfig", key, "--get", "CONFIG_HZ")
    check(rc == 0 and out.strip() == "250",
          f"ktcache kconfig {key} --get CONFIG_HZ: exit {rc}, {out!r}, {err}")
    rc, out, err, _ = cli.run("verify", key)
    check(rc == 0, f"ktcache verify {key} exited {rc}: {out}{err}")

    rc, out, err, _ = cli.run("list", "--json")
    check(rc == 0, f"ktcache list --json exited {rc}: {err}")
    entries = {item["key"]: item for item in json.loads(out)}
    check(key in entries, f"ktcache list --json lacks {key}: {list(entries)}")
    item = entries[key]
    check(item["status"] == "valid", f"the entry is {item['status']}: "
          f"{item.get('reason')}")
    source = (item.get("metadata") or {}).get("source") or {}
    check(source.get("type") == "tarball",
          f"the entry's source is {source}, not a tarball")
    check(item.get("vmlinux_path") and item.get("config_path"),
          f"the entry lacks a vmlinux or config: {item}")

    rc, out, _, hit_seconds = cli.run(*build, "--json", stream_stderr=True)
    check(rc == 0, f"the second ktcache build exited {rc}")
    result = json.loads(last_line(out))
    check(result.get("outcome") == "hit",
          f"the second build's outcome is {result.get('outcome')!r}, not hit")
    check(result.get("key") == key and os.path.realpath(
        result.get("path", "")) == os.path.realpath(entry),
          f"the hit is {result.get('key')} at {result.get('path')}, not "
          f"{key}")
    check(hit_seconds < HIT_SECONDS,
          f"the cache hit took {hit_seconds:.2f} s (at most {HIT_SECONDS})")
    print(f"hit {key} in {hit_seconds:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
