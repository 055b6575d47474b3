#!/usr/bin/env python3
"""A plugin built outside the tree, used by the installed ktcache.

Usage: check_external.py MESON BUILD_DIR CC PKG_CONFIG MAKE DEMO_MAKEFILE

Installs the build into a temporary DESTDIR, builds demo_plugin/ with its
own Makefile against the installed <ktcache/plugin.h> (found only through
`pkg-config --cflags ktcache-plugin`), drops source_demo.so into the
installed plugin directory and drives the installed CLI: the plugin must be
found there by default, describe and store "demo:hello" with the checksum
only the plugin computes, and once it is removed the stored entry must
still read as valid while the scheme fails cleanly.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

WORD = "hello"
SPEC = f"demo:{WORD}"
KEY = "external-demo"


class Failure(Exception):
    pass


def fnv1a64(text):
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def run(command, env=None, cwd=None, expect_ok=True):
    result = subprocess.run(command, capture_output=True, text=True, env=env,
                            cwd=cwd)
    if expect_ok and result.returncode != 0:
        raise Failure(f"{' '.join(command)} exited {result.returncode}:\n"
                      f"{result.stdout}{result.stderr}")
    return result


def expect(condition, message):
    if not condition:
        raise Failure(message)


def install_dirs(meson, build_dir):
    options = json.loads(run([meson, "introspect", "--buildoptions",
                              build_dir]).stdout)
    values = {option["name"]: option["value"] for option in options}
    prefix = values["prefix"]
    return {name: os.path.join(prefix, values[name])
            for name in ("libdir", "bindir")}


def same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def build_plugin(work, destdir, libdir, cc, pkg_config, make, makefile):
    """Builds source_demo.so as a third party would; returns its path."""
    env = dict(os.environ)
    # The sysroot maps the .pc file's -I into DESTDIR, so only the
    # installed header can be the one compiled against.
    env["PKG_CONFIG_SYSROOT_DIR"] = destdir
    env["PKG_CONFIG_PATH"] = os.path.join(libdir, "pkgconfig")
    env.pop("PKG_CONFIG_LIBDIR", None)

    cflags = run([pkg_config, "--cflags", "ktcache-plugin"], env).stdout
    includes = [flag[2:] for flag in cflags.split() if flag.startswith("-I")]
    expect(includes and all(path.startswith(destdir + "/")
                            for path in includes),
           f"ktcache-plugin.pc --cflags gives {cflags.strip()!r}: expected "
           f"include paths inside the DESTDIR {destdir}")
    expect(any(os.path.isfile(os.path.join(path, "ktcache", "plugin.h"))
               for path in includes),
           f"no ktcache/plugin.h under the include paths {includes}")
    # A plugin must not link libktcache: the .pc file offers nothing to
    # link, not even through Requires.
    for flags in (["--libs"], ["--libs", "--static"], ["--cflags"]):
        given = run([pkg_config, *flags, "ktcache-plugin"], env).stdout
        linked = [flag for flag in given.split() if flag.startswith("-l")]
        expect(not linked, f"pkg-config {' '.join(flags)} ktcache-plugin "
                           f"gives {linked}; a plugin links nothing")

    build = os.path.join(work, "demo-build")
    os.mkdir(build)
    run([make, "--no-print-directory", "-f", makefile, "-C", build,
         f"CC={cc}", f"PKG_CONFIG={pkg_config}"], env)
    plugin = os.path.join(build, "source_demo.so")
    expect(os.path.isfile(plugin), f"the Makefile wrote no {plugin}")

    dynamic = run(["readelf", "--dynamic", "--wide", plugin]).stdout
    expect("libktcache" not in dynamic,
           f"source_demo.so links libktcache:\n{dynamic}")
    symbols = run(["readelf", "--dyn-syms", "--wide", plugin]).stdout
    exported = [line.split()[-1] for line in symbols.splitlines()
                if " GLOBAL " in line and " UND " not in line]
    expect(exported == ["ktc_plugin_query_v1"],
           f"source_demo.so exports {exported}, expected only "
           f"ktc_plugin_query_v1")
    return plugin


def check_cli(work, destdir, dirs, plugin):
    libdir = destdir + dirs["libdir"]
    plugin_dir = os.path.join(libdir, "ktcache", "plugins")
    cli = os.path.join(destdir + dirs["bindir"], "ktcache")
    for shipped in ("source_local.so", "strip_none.so"):
        expect(os.path.isfile(os.path.join(plugin_dir, shipped)),
               f"shipped plugin not installed: {plugin_dir}/{shipped}")
    installed_plugin = os.path.join(plugin_dir, "source_demo.so")
    shutil.copy(plugin, installed_plugin)

    env = dict(os.environ)
    # Only the installed directory, found relative to the installed
    # libktcache.so, may supply plugins.
    for name in ("KTCACHE_PLUGIN_PATH", "KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR"):
        env.pop(name, None)
    env["LD_LIBRARY_PATH"] = libdir
    env["KTCACHE_DIR"] = os.path.join(work, "cache")

    def ktcache(*args, expect_ok=True):
        return run([cli, *args], env, cwd=work, expect_ok=expect_ok)

    def plugins_json():
        return json.loads(ktcache("plugins", "--all", "--json").stdout)

    checksum = fnv1a64(WORD)
    expected_source = {"type": "demo", "word": WORD, "checksum": checksum}

    rows = {row["name"]: row for row in plugins_json()}
    for name, kind, file_name in (("demo", "source", "source_demo.so"),
                                  ("local", "source", "source_local.so"),
                                  ("none", "strip", "strip_none.so")):
        expect(name in rows, f"ktcache plugins does not list {name}: "
                             f"{sorted(rows)}")
        row = rows[name]
        expect(row["state"] == "loaded" and row["reason"] is None,
               f"plugin {name} is not loaded: {row}")
        expect(row["kind"] == kind, f"plugin {name}: kind {row['kind']}")
        # A file in the installed directory also proves the CLI runs the
        # installed libktcache.so, whose location that directory follows.
        expect(same_file(row["file"], os.path.join(plugin_dir, file_name)),
               f"plugin {name} loaded from {row['file']}, expected "
               f"{plugin_dir}/{file_name}")
        expect(row["abi_major"] == 1, f"plugin {name}: {row}")
    header_dirs = [os.path.dirname(root)
                   for root, _, files in os.walk(destdir)
                   if root.endswith("/ktcache") and "plugin.h" in files]
    header_minor = installed_abi_minor(header_dirs)
    expect(rows["demo"]["version"] == "0.0.1" and
           rows["demo"]["abi_minor"] == header_minor,
           f"demo row: {rows['demo']} (the installed plugin.h has ABI minor "
           f"{header_minor})")

    described = json.loads(ktcache("source", "describe", SPEC,
                                   "--json").stdout)
    expect(described.get("spec") == SPEC, f"describe: {described}")
    expect(described["plugin"]["name"] == "demo" and
           described["plugin"]["version"] == "0.0.1" and
           same_file(described["plugin"]["file"], installed_plugin),
           f"describe names the wrong plugin: {described['plugin']}")
    expect(described["identity"] == {"version": "0.0.1",
                                     "checksum": checksum},
           f"describe identity {described['identity']}, expected checksum "
           f"{checksum}")
    expect(described["source"] == expected_source,
           f"describe source {described['source']}, expected "
           f"{expected_source}")
    expect(described["key_parts"] == ["demo", WORD],
           f"describe key_parts {described['key_parts']}")

    # The plugin's own message reaches the user, and a refused spec stores
    # nothing.
    image = os.path.join(work, "bzImage")
    with open(image, "wb") as out:
        out.write(b"not a kernel, but bytes to store\n")
    refused = ktcache("store", "refused", "--image", image, "--source",
                      "demo:two words", expect_ok=False)
    expect(refused.returncode != 0 and "WORD must be" in refused.stderr and
           "source_demo.so" in refused.stderr,
           f"store of a bad demo spec: exit {refused.returncode}, "
           f"stderr {refused.stderr!r}")

    ktcache("store", KEY, "--image", image, "--source", SPEC)

    def the_entry():
        entries = json.loads(ktcache("list", "--json").stdout)
        keys = [entry["key"] for entry in entries]
        expect(keys == [KEY], f"list --json keys {keys}, expected [{KEY!r}]")
        return entries[0]

    def check_entry(when):
        entry = the_entry()
        expect(entry["status"] == "valid",
               f"{when}: entry is {entry['status']}: {entry}")
        metadata = entry["metadata"]
        expect(metadata["source"] == expected_source,
               f"{when}: entry source {metadata['source']}, expected "
               f"{expected_source}")
        expect(metadata.get("version") == "0.0.1",
               f"{when}: entry version {metadata.get('version')!r}, "
               f"expected the plugin's identity version 0.0.1")

    check_entry("after store")

    os.remove(installed_plugin)
    check_entry("after removing source_demo.so")
    expect("demo" not in {row["name"] for row in plugins_json()},
           "ktcache plugins still lists demo after its file was removed")
    gone = ktcache("source", "describe", SPEC, expect_ok=False)
    lines = gone.stderr.strip().splitlines()
    expect(gone.returncode != 0, "source describe demo:hello succeeded "
                                 "without the plugin")
    expect(gone.returncode == 7,
           f"source describe without the plugin exited {gone.returncode}, "
           f"expected 7 (plugin error)")
    expect(len(lines) == 1 and lines[0].startswith("ktcache: ") and
           "no plugin" in lines[0] and "'demo'" in lines[0],
           f"expected one error line naming no plugin for scheme 'demo', "
           f"got {gone.stderr!r}")


def installed_abi_minor(includes):
    """KTC_PLUGIN_ABI_MINOR of the installed header the demo compiles
    against: the minor the demo plugin must report."""
    for path in includes:
        header = os.path.join(path, "ktcache", "plugin.h")
        if os.path.isfile(header):
            with open(header, encoding="utf-8") as text:
                found = re.search(r"^#define KTC_PLUGIN_ABI_MINOR (\d+)$",
                                  text.read(), re.MULTILINE)
            expect(found is not None, f"{header}: no KTC_PLUGIN_ABI_MINOR")
            return int(found.group(1))
    raise Failure(f"no ktcache/plugin.h under {includes}")


def main():
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    meson, build_dir, cc, pkg_config, make, makefile = sys.argv[1:]
    makefile = os.path.abspath(makefile)
    dirs = install_dirs(meson, build_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="ktcache-external-") as work:
            destdir = os.path.join(work, "dest")
            run([meson, "install", "-C", build_dir, "--no-rebuild", "--quiet",
                 "--destdir", destdir])
            plugin = build_plugin(work, destdir, destdir + dirs["libdir"], cc,
                                  pkg_config, make, makefile)
            check_cli(work, destdir, dirs, plugin)
    except Failure as failure:
        print(f"FAIL: {failure}")
        return 1
    print(f"ok: out-of-tree source_demo.so built with pkg-config, found in "
          f"the installed plugin directory; {SPEC} described and stored with "
          f"checksum {fnv1a64(WORD)}; the entry outlived the plugin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
