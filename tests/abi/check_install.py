#!/usr/bin/env python3
"""Installs the build into a temporary DESTDIR and uses it as a host would.

Usage: check_install.py MESON BUILD_DIR VERSION SOVERSION CC PKG_CONFIG

Checks that `meson install --destdir` puts libktcache.so.SOVERSION (with
that soname), include/ktcache/ktcache.h, pkgconfig/ktcache.pc and
bin/ktcache under the configured prefix, then compiles a C99 program with
`pkg-config --cflags --libs ktcache` against the installed tree and runs
it: it must print ktc_version(), which must be VERSION.
"""

import json
import os
import subprocess
import sys
import tempfile

PROGRAM = """\
#include <ktcache/ktcache.h>

#include <stdio.h>

int main(void) {
  printf("%s\\n", ktc_version());
  return 0;
}
"""


def run(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(command)} exited "
                         f"{result.returncode}:\n{result.stdout}"
                         f"{result.stderr}")
    return result.stdout


def install_dirs(meson, build_dir):
    options = json.loads(run([meson, "introspect", "--buildoptions",
                              build_dir]))
    values = {option["name"]: option["value"] for option in options}
    prefix = values["prefix"]

    def under_prefix(name):
        return os.path.join(prefix, values[name])

    return {name: under_prefix(name)
            for name in ("libdir", "includedir", "bindir")}


def main():
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    meson, build_dir, version, soversion, cc, pkg_config = sys.argv[1:]
    dirs = install_dirs(meson, build_dir)
    problems = []

    with tempfile.TemporaryDirectory(prefix="ktcache-install-") as work:
        destdir = os.path.join(work, "dest")
        run([meson, "install", "-C", build_dir, "--no-rebuild", "--quiet",
             "--destdir", destdir])

        def staged(path):
            return destdir + path

        libdir = staged(dirs["libdir"])
        soname = f"libktcache.so.{soversion}"
        expected = [
            os.path.join(libdir, soname),
            os.path.join(libdir, "libktcache.so"),
            os.path.join(staged(dirs["includedir"]), "ktcache", "ktcache.h"),
            os.path.join(libdir, "pkgconfig", "ktcache.pc"),
            os.path.join(staged(dirs["bindir"]), "ktcache"),
        ]
        for path in expected:
            if not os.path.exists(path):
                problems.append(f"not installed: {path[len(destdir):]}")
        if problems:
            for problem in problems:
                print(f"FAIL: {problem}")
            return 1

        dynamic = run(["readelf", "--dynamic", "--wide",
                       os.path.join(libdir, soname)])
        if f"Library soname: [{soname}]" not in dynamic:
            problems.append(f"{soname} does not carry the soname {soname}")

        # The sysroot maps the .pc file's -I and -L paths into DESTDIR, so
        # the installed tree is used exactly as its .pc file describes it.
        env = dict(os.environ)
        env["PKG_CONFIG_SYSROOT_DIR"] = destdir
        env["PKG_CONFIG_PATH"] = os.pathsep.join(
            filter(None, [os.path.join(libdir, "pkgconfig"),
                          env.get("PKG_CONFIG_PATH")]))
        modversion = run([pkg_config, "--modversion", "ktcache"],
                         env).strip()
        if modversion != version:
            problems.append(f"ktcache.pc gives version {modversion}, "
                            f"expected {version}")
        flags = run([pkg_config, "--cflags", "--libs", "ktcache"],
                    env).split()

        source = os.path.join(work, "host.c")
        with open(source, "w", encoding="utf-8") as out:
            out.write(PROGRAM)
        program = os.path.join(work, "host")
        run([cc, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror",
             source, "-o", program, *flags])
        run_env = dict(os.environ)
        run_env["LD_LIBRARY_PATH"] = libdir
        printed = run([program], run_env).strip()
        if printed != version:
            problems.append(f"the installed library's ktc_version() gave "
                            f"{printed!r}, expected {version!r}")

    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        return 1
    print(f"ok: installed tree complete; a C99 host built with pkg-config "
          f"printed {printed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
