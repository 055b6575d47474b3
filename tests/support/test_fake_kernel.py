#!/usr/bin/env python3
"""Self-test of the fake kernel tree (fake_kernel.py), driven with make the
way `ktcache build` drives a tree.

Usage: test_fake_kernel.py KTCACHE [PLUGIN_DIR]

Checks `make -s kernelversion` and the Makefile's first lines, defconfig,
tinyconfig, NAME_defconfig and a file base, the fragment merge with an
unknown (dropped) line, olddefconfig's defaults and normal form, the
default goal's ELF vmlinux (readelf: ET_EXEC, the machine, a GNU build-id;
`ktcache kconfig VMLINUX --get CONFIG_HZ` answers 250; `ktcache strip`
keeps it without a fallback), the boot images of both arches, the build
count, the recorded KBUILD_BUILD_* environment and -j, reproducibility,
git cleanliness, CONFIG_FAKE_FAIL and CONFIG_FAKE_SLEEP, and the tarball.
Exits 0 when every check passed, 1 when one failed, 77 (skipped) when make,
gcc or readelf is missing.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_kernel  # noqa: E402

PINNED = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 1970",
    "KBUILD_BUILD_USER": "ktcache",
    "KBUILD_BUILD_HOST": "ktcache-host",
    "KBUILD_BUILD_VERSION": "1",
}
HOST_MACHINE = {"x86_64": 62, "aarch64": 183}.get(os.uname().machine)


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def clean_env(**extra):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KBUILD_", "MAKE", "FAKE_")) and
           key not in ("MFLAGS", "ARCH", "SRCARCH", "CROSS_COMPILE", "LLVM",
                       "CC", "O", "LOCALVERSION", "GNUMAKEFLAGS")}
    env.update(extra)
    return env


def make(tree, *args, env=None, check_rc=True):
    """make in the tree, as the pipeline runs it; (rc, stdout, stderr)."""
    done = subprocess.run(["make"] + list(args), cwd=tree,
                          env=env or clean_env(), capture_output=True,
                          text=True, check=False)
    if check_rc and done.returncode != 0:
        raise CheckFailed(f"make {' '.join(args)} exited {done.returncode}:"
                          f"\n{done.stdout}{done.stderr}")
    return done.returncode, done.stdout, done.stderr


def read(path, mode="r"):
    with open(path, mode) as source:
        return source.read()


def config_lines(tree):
    return read(os.path.join(tree, ".config")).splitlines()


def configure(tree, base, fragments, karch="x86_64"):
    """What the contract says ktcache does: a make target base or a file
    base, the fragments merged into .config, olddefconfig, then every
    fragment line missing from the final .config is dropped."""
    if os.path.isfile(base):
        shutil.copyfile(base, os.path.join(tree, ".config"))
    else:
        make(tree, f"ARCH={karch}", base)
    with open(os.path.join(tree, ".config"), "a") as config:
        for line in fragments:
            config.write(line + "\n")
    make(tree, f"ARCH={karch}", "olddefconfig")
    final = set(config_lines(tree))
    return [line for line in fragments if line not in final]


def build(tree, karch="x86_64", jobs=2, env=None, extra=()):
    env = env or clean_env(**PINNED)
    started = time.monotonic()
    rc, out, err = make(tree, f"ARCH={karch}", f"-j{jobs}", *extra, env=env,
                        check_rc=False)
    return rc, out + err, time.monotonic() - started


def elf_header(path):
    data = read(path, "rb")[:64]
    check(data[:4] == b"\x7fELF", f"{path} is not an ELF file")
    endian = "<" if data[5] == 1 else ">"
    e_type, e_machine = struct.unpack_from(endian + "HH", data, 16)
    return {"class": data[4], "type": e_type, "machine": e_machine}


def readelf(*args):
    done = subprocess.run(["readelf"] + list(args), capture_output=True,
                          text=True, check=False)
    check(done.returncode == 0, f"readelf {' '.join(args)} failed: "
          f"{done.stderr}")
    return done.stdout


class Suite:
    def __init__(self, ktcache, plugin_dir, work):
        self.ktcache = ktcache
        self.plugin_dir = plugin_dir
        self.work = work
        self.count = 0

    def tree(self, **kwargs):
        self.count += 1
        path = os.path.join(self.work, f"tree{self.count}")
        return fake_kernel.write_tree(path, **kwargs)

    def run_ktcache(self, *args):
        argv = [self.ktcache, "--cache-dir", os.path.join(self.work, "cache")]
        if self.plugin_dir:
            argv += ["--plugin-dir", self.plugin_dir]
        done = subprocess.run(argv + list(args), capture_output=True,
                              text=True, check=False)
        return done.returncode, done.stdout, done.stderr

    # -- the checks -------------------------------------------------------

    def test_kernelversion(self):
        for version, expected, fields in (
                ("6.1.2", "6.1.2", ("6", "1", "2", "")),
                ("6.12-rc3", "6.12.0-rc3", ("6", "12", "0", "-rc3")),
                ("5.15.7-foo", "5.15.7-foo", ("5", "15", "7", "-foo"))):
            tree = self.tree(version=version)
            _, out, _ = make(tree, "-s", "kernelversion")
            check(out.strip() == expected,
                  f"kernelversion of {version}: {out!r}, not {expected!r}")
            # The source plugins read these lines, as in a real Makefile.
            head = read(os.path.join(tree, "Makefile")).splitlines()[1:5]
            wanted = [f"{name} ={' ' + value if value else ''}" for name, value
                      in zip(("VERSION", "PATCHLEVEL", "SUBLEVEL",
                              "EXTRAVERSION"), fields)]
            check(head == wanted, f"the Makefile starts {head}, not {wanted}")
            check(os.path.isfile(os.path.join(tree, "Kconfig")),
                  "no Kconfig at the root")
        try:
            fake_kernel.write_tree(os.path.join(self.work, "bad"),
                                   version="six")
        except ValueError:
            pass
        else:
            raise CheckFailed("write_tree accepted the version 'six'")

    def test_source_local_reads_it(self):
        if not self.plugin_dir:
            return "no plugin directory given"
        tree = self.tree(version="6.9.4", git=True)
        rc, out, err = self.run_ktcache("source", "describe", "local:" + tree,
                                        "--json")
        check(rc == 0, f"source describe exited {rc}: {err}")
        identity = json.loads(out)["identity"]
        check(identity.get("version") == "6.9.4",
              f"the local plugin read version {identity.get('version')}")
        check(identity.get("dirty") == "false",
              f"a fresh --git tree is dirty: {identity}")
        return None

    def test_defconfig_and_tinyconfig(self):
        tree = self.tree()
        make(tree, "ARCH=x86_64", "defconfig")
        lines = config_lines(tree)
        for line in ("CONFIG_IKCONFIG=y", "CONFIG_X86_64=y", "CONFIG_64BIT=y",
                     "CONFIG_HZ=250", "CONFIG_SMP=y"):
            check(line in lines, f"defconfig lacks {line}")
        check(lines[2] == "# Linux/x86 6.1.2 Kernel Configuration",
              f"defconfig's header: {lines[:4]}")

        make(tree, "ARCH=x86_64", "tinyconfig")
        lines = config_lines(tree)
        for line in ("# CONFIG_IKCONFIG is not set", "# CONFIG_SMP is not set",
                     "CONFIG_CC_OPTIMIZE_FOR_SIZE=y", "CONFIG_64BIT=y",
                     "CONFIG_HZ=250", "# CONFIG_PRINTK is not set"):
            check(line in lines, f"tinyconfig lacks {line}")

        make(tree, "ARCH=x86_64", "fake_debug_defconfig")
        lines = config_lines(tree)
        for line in ("CONFIG_DEBUG_INFO_BTF=y", "CONFIG_HZ=1000",
                     "# CONFIG_HZ_250 is not set"):
            check(line in lines, f"fake_debug_defconfig lacks {line}")

        make(tree, "ARCH=arm64", "defconfig")
        lines = config_lines(tree)
        check("CONFIG_ARM64=y" in lines and "CONFIG_IKCONFIG=y" in lines,
              "arm64 defconfig lacks CONFIG_ARM64=y or CONFIG_IKCONFIG=y")
        check(not any("X86" in line for line in lines),
              "arm64's .config has x86 symbols")
        check(lines[2].startswith("# Linux/arm64 "), lines[2])

        rc, _, err = make(tree, "ARCH=x86_64", "nope_defconfig",
                          check_rc=False)
        check(rc != 0 and "nope_defconfig" in err,
              f"a missing NAME_defconfig did not fail (rc {rc})")
        rc, _, err = make(tree, "ARCH=aarch64", "defconfig", check_rc=False)
        check(rc != 0, "ARCH=aarch64 was accepted (the kernel's is arm64)")

    def test_fragments_and_drops(self):
        tree = self.tree()
        fragments = ["CONFIG_64BIT=y", "CONFIG_IKCONFIG=y", "CONFIG_HZ=1000",
                     "CONFIG_NOT_A_SYMBOL=y", "# CONFIG_SMP is not set",
                     'CONFIG_LOCALVERSION="-ktc"', "CONFIG_FAKE_SLEEP=soon"]
        dropped = configure(tree, "tinyconfig", fragments)
        check(dropped == ["CONFIG_NOT_A_SYMBOL=y", "CONFIG_FAKE_SLEEP=soon"],
              f"dropped {dropped}")
        lines = config_lines(tree)
        check("CONFIG_FAKE_SLEEP=0" in lines, "an invalid int kept")
        check(not any("NOT_A_SYMBOL" in line for line in lines),
              "the unknown symbol is in .config")
        _, out, _ = make(tree, "-s", "ARCH=x86_64", "kernelrelease")
        check(out.strip() == "6.1.2-ktc", f"kernelrelease: {out!r}")

        # An x86 symbol is unknown on arm64.
        dropped = configure(tree, "defconfig", ["CONFIG_X86_64=y",
                                                "CONFIG_ARM64_VA_BITS=52"],
                            karch="arm64")
        check(dropped == ["CONFIG_X86_64=y"], f"arm64 dropped {dropped}")

        # A file base: copied to .config, then olddefconfig fills it in.
        base = os.path.join(self.work, "base.config")
        with open(base, "w") as out:
            out.write("CONFIG_IKCONFIG=y\nCONFIG_HZ=100\n# CONFIG_PRINTK is "
                      "not set\nCONFIG_BOGUS=m\n")
        dropped = configure(tree, base, ["CONFIG_HZ_100=y"])
        check(dropped == [], f"a file base dropped {dropped}")
        lines = config_lines(tree)
        for line in ("CONFIG_IKCONFIG=y", "CONFIG_HZ=100", "CONFIG_HZ_100=y",
                     "# CONFIG_PRINTK is not set", "CONFIG_SMP=y"):
            check(line in lines, f"the file base's .config lacks {line}")
        check(not any("BOGUS" in line for line in lines),
              "an unknown symbol of the base survived")

    def test_olddefconfig_defaults(self):
        tree = self.tree()
        make(tree, "ARCH=x86_64", "olddefconfig")  # no .config at all
        lines = config_lines(tree)
        for line in ("CONFIG_64BIT=y", "CONFIG_HZ=250", "CONFIG_HZ_250=y",
                     "# CONFIG_HZ_100 is not set", "# CONFIG_HZ_1000 is not set",
                     'CONFIG_LOCALVERSION=""', "# CONFIG_IKCONFIG is not set",
                     "# CONFIG_DEBUG_INFO_BTF is not set",
                     "# CONFIG_FAKE_FAIL is not set", "CONFIG_FAKE_SLEEP=0",
                     "CONFIG_FAKE_TRISTATE=m"):
            check(line in lines, f"the defaults lack {line}")
        path = os.path.join(tree, ".config")
        with open(path, "w") as out:
            out.write("CONFIG_HZ=100\nCONFIG_IKCONFIG=y\nCONFIG_HZ=300\n"
                      "# CONFIG_IKCONFIG is not set\n"
                      'CONFIG_LOCALVERSION="a \\"q\\" b"\n'
                      "# CONFIG_HZ is not set\n")
        make(tree, "ARCH=x86_64", "olddefconfig")
        lines = config_lines(tree)
        check("CONFIG_HZ=300" in lines, "the last CONFIG_HZ did not win")
        check("# CONFIG_IKCONFIG is not set" in lines,
              "'is not set' after =y did not win")
        check('CONFIG_LOCALVERSION="a \\"q\\" b"' in lines,
              f"the string was not kept escaped: {lines}")
        first = read(path)
        make(tree, "ARCH=x86_64", "olddefconfig")
        check(read(path) == first, "olddefconfig is not a fixed point")
        names = [re.sub(r"^# (CONFIG_\w+) is not set$|^(CONFIG_\w+)=.*$",
                        r"\1\2", line) for line in lines
                 if line.startswith("CONFIG_") or line.endswith("is not set")]
        check(len(names) == len(set(names)), "a symbol is written twice")

    def test_build_x86_64(self):
        tree = self.tree(git=True)
        configure(tree, "defconfig", [])
        rc, log, seconds = build(tree)
        check(rc == 0, f"the build failed:\n{log}")
        check(seconds < 10, f"the build took {seconds:.1f} s")
        vmlinux = os.path.join(tree, "vmlinux")
        header = elf_header(vmlinux)
        check(header["class"] == 2 and header["type"] == 2,
              f"vmlinux is not an ELF64 ET_EXEC: {header}")
        check(header["machine"] == 62, f"vmlinux machine {header['machine']}")
        notes = readelf("-n", vmlinux)
        check(re.search(r"Build ID: [0-9a-f]{40}", notes),
              f"no GNU build-id note:\n{notes}")
        symbols = readelf("-sW", vmlinux)
        for name in ("kernel_config_data", "kernel_config_data_end",
                     "start_kernel", "linux_banner", "fake_hash"):
            check(re.search(rf"\s{name}$", symbols, re.M),
                  f"vmlinux has no symbol {name}")
        sections = readelf("-SW", vmlinux)
        check(".rodata" in sections and ".debug_info" in sections,
              "vmlinux lacks .rodata or DWARF (defconfig has DEBUG_INFO)")
        data = read(vmlinux, "rb")
        check(b"IKCFG_ST\x1f\x8b" in data and b"IKCFG_ED" in data,
              "the IKCONFIG markers are not around a gzip stream")
        check(f"({PINNED['KBUILD_BUILD_USER']}@{PINNED['KBUILD_BUILD_HOST']})"
              .encode() in data and PINNED["KBUILD_BUILD_TIMESTAMP"].encode()
              in data, "the banner lacks the pinned KBUILD_BUILD_* values")

        rc, out, err = self.run_ktcache("kconfig", vmlinux, "--get",
                                        "CONFIG_HZ")
        check(rc == 0 and out.strip() == "250",
              f"ktcache kconfig --get CONFIG_HZ: rc {rc}, {out!r}, {err}")
        rc, out, err = self.run_ktcache("kconfig", vmlinux)
        check(rc == 0 and out == read(os.path.join(tree, ".config")),
              f"the embedded config is not .config (rc {rc}): {err}")
        rc, out, err = self.run_ktcache(
            "strip", vmlinux, "-o", os.path.join(self.work, "stripped"),
            "--policy", "btf", "--json")
        if rc != 7:  # 7: the policy plugin is not built
            check(rc == 0, f"ktcache strip exited {rc}: {err}")
            result = json.loads(out)
            check(result["fallback"] is None and result["build_id"],
                  f"the strip engine fell back: {result}")

        image = read(os.path.join(tree, "arch/x86/boot/bzImage"), "rb")
        check(image[0x202:0x206] == b"HdrS", "bzImage has no HdrS header")
        check(not os.path.exists(os.path.join(tree, "arch/arm64/boot/Image")),
              "an arm64 Image from an x86_64 build")

        env = fake_kernel.read_build_env(tree)
        for name, value in PINNED.items():
            check(env.get(name) == value,
                  f".fake-build-env: {name}={env.get(name)!r}, not {value!r}")
        check(env["JOBS"] == "2", f"JOBS={env['JOBS']}")
        check("-j2" in env["MAKEFLAGS"], f"MAKEFLAGS={env['MAKEFLAGS']}")
        check(env["MAKE_OVERRIDES"] == "ARCH=x86_64",
              f"MAKE_OVERRIDES={env['MAKE_OVERRIDES']}")
        check(env["ARCH"] == "x86_64" and env["SRCARCH"] == "x86"
              and env["CC"] == "gcc", f"ARCH/SRCARCH/CC: {env}")
        check(fake_kernel.count_builds(tree) == 1,
              f"{fake_kernel.count_builds(tree)} builds counted, not 1")

        status = subprocess.run(["git", "status", "--porcelain"], cwd=tree,
                                capture_output=True, text=True, check=True)
        check(status.stdout == "", f"the build dirtied the git tree:\n"
              f"{status.stdout}")

        # Same inputs, same bytes; the count grows; -j and the unset
        # KBUILD_BUILD_* values are recorded as seen.
        first = read(vmlinux, "rb")
        rc, log, _ = build(tree, jobs=1)
        check(rc == 0, f"the second build failed:\n{log}")
        check(read(vmlinux, "rb") == first, "the build is not reproducible")
        check(fake_kernel.count_builds(tree) == 2, "the second build was "
              "not counted")
        check(fake_kernel.read_build_env(tree)["JOBS"] == "1", "JOBS != 1")
        rc, log, _ = build(tree, env=clean_env())
        check(rc == 0, f"a build without pinned values failed:\n{log}")
        env = fake_kernel.read_build_env(tree)
        check(not any(name in env for name in PINNED),
              f"unset KBUILD_BUILD_* recorded as set: {env}")
        check("# KBUILD_BUILD_USER is not set" in
              read(os.path.join(tree, ".fake-build-env")), "no 'not set' line")

        # FAKE_KERNEL_LOG takes the count instead of the tree.
        log_path = os.path.join(self.work, "builds.log")
        rc, log, _ = build(tree, env=clean_env(FAKE_KERNEL_LOG=log_path,
                                               **PINNED))
        check(rc == 0, f"the build with FAKE_KERNEL_LOG failed:\n{log}")
        check(fake_kernel.count_builds(log_path) == 1,
              "the build did not count in $FAKE_KERNEL_LOG")
        check(fake_kernel.count_builds(tree) == 3,
              "a FAKE_KERNEL_LOG build was counted in the tree")

    def test_build_arm64(self):
        tree = self.tree()
        configure(tree, "defconfig", ["CONFIG_HZ=1000"], karch="arm64")
        rc, log, _ = build(tree, karch="arm64")
        check(rc == 0, f"the arm64 build failed:\n{log}")
        vmlinux = os.path.join(tree, "vmlinux")
        header = elf_header(vmlinux)
        check(header["class"] == 2 and header["machine"] == 183,
              f"the arm64 vmlinux is {header}, not ELF64 AArch64")
        check("Build ID" in readelf("-n", vmlinux), "no build-id on arm64")
        image = read(os.path.join(tree, "arch/arm64/boot/Image"), "rb")
        check(image[0x38:0x3c] == b"ARM\x64", "Image lacks the ARM\\x64 magic")
        check(not os.path.exists(os.path.join(tree, "arch/x86/boot/bzImage")),
              "a bzImage from an arm64 build")
        rc, out, err = self.run_ktcache("kconfig", vmlinux, "--get", "HZ")
        check(rc == 0 and out.strip() == "1000",
              f"kconfig of the arm64 vmlinux: rc {rc}, {out!r}, {err}")

    def test_no_config_and_no_ikconfig(self):
        tree = self.tree()
        rc, log, _ = build(tree)
        check(rc != 0 and "Configuration file \".config\" not found" in log,
              f"a build without .config: rc {rc}\n{log}")
        check(fake_kernel.count_builds(tree) == 0,
              "a build refused for want of .config was counted")
        configure(tree, "tinyconfig", [])
        rc, log, _ = build(tree)
        check(rc == 0, f"the tinyconfig build failed:\n{log}")
        check(b"IKCFG_ST" not in read(os.path.join(tree, "vmlinux"), "rb"),
              "IKCONFIG is n, yet the config is embedded")
        rc, _, _ = self.run_ktcache("kconfig", os.path.join(tree, "vmlinux"),
                                    "--get", "CONFIG_HZ")
        check(rc == 1, f"kconfig of a vmlinux without IKCONFIG exited {rc}")

    def test_fake_fail(self):
        tree = self.tree()
        configure(tree, "defconfig", ["CONFIG_FAKE_FAIL=y"])
        rc, log, _ = build(tree)
        check(rc != 0, "CONFIG_FAKE_FAIL=y built")
        lines = log.splitlines()
        check(len(lines) > 400, f"the failing log has {len(lines)} lines")
        tail = "\n".join(lines[-12:])
        check(re.search(r"kernel/fake_fail\.c:\d+:\d+: error: #error "
                        r"\"CONFIG_FAKE_FAIL=y", tail),
              f"the log's tail has no compiler error:\n{tail}")
        check("Error" in lines[-1], f"the last line: {lines[-1]}")
        check(not os.path.exists(os.path.join(tree, "vmlinux")),
              "a failed build left a vmlinux")
        check(fake_kernel.count_builds(tree) == 1, "the failure not counted")

    def test_fake_sleep(self):
        tree = self.tree()
        configure(tree, "tinyconfig", ["CONFIG_FAKE_SLEEP=1"])
        rc, log, seconds = build(tree)
        check(rc == 0, f"the sleeping build failed:\n{log}")
        check(seconds >= 1, f"CONFIG_FAKE_SLEEP=1 took {seconds:.2f} s")

    def test_git_and_tarball(self):
        one = self.tree(git=True)
        two = self.tree(git=True)

        def head(tree):
            return subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree,
                                  capture_output=True, text=True,
                                  check=True).stdout.strip()
        check(head(one) == head(two), "the same tree gave two commit ids")
        count = subprocess.run(["git", "rev-list", "--count", "HEAD"],
                               cwd=one, capture_output=True, text=True,
                               check=True).stdout.strip()
        check(count == "1", f"{count} commits, not 1")
        ignore = read(os.path.join(one, ".gitignore"))
        for pattern in (".config", "vmlinux", "*.o", "arch/*/boot/*Image",
                        ".fake-*"):
            check(pattern in ignore, f".gitignore lacks {pattern}")

        configure(one, "defconfig", [])
        rc, log, _ = build(one)
        check(rc == 0, f"build failed:\n{log}")
        tarball = os.path.join(self.work, "linux-6.1.2.tar.xz")
        fake_kernel.make_tarball(one, tarball)
        with tarfile.open(tarball) as tar:
            names = tar.getnames()
            check("linux-6.1.2/Makefile" in names and
                  "linux-6.1.2/Kconfig" in names, f"tarball: {names[:5]}")
            leaked = [name for name in names if re.search(
                r"/\.git(/|$)|\.o$|/vmlinux$|/\.config$|Image$|\.fake-|"
                r"include/generated", name)]
            check(not leaked, f"the tarball holds build outputs: {leaked}")
            tar.extractall(os.path.join(self.work, "unpacked"))
        unpacked = os.path.join(self.work, "unpacked", "linux-6.1.2")
        _, out, _ = make(unpacked, "-s", "kernelversion")
        check(out.strip() == "6.1.2", f"the unpacked tree says {out!r}")
        configure(unpacked, "tinyconfig", ["CONFIG_IKCONFIG=y"])
        rc, log, _ = build(unpacked)
        check(rc == 0, f"the unpacked tree does not build:\n{log}")

    def test_cli(self):
        path = os.path.join(self.work, "from-cli")
        done = subprocess.run(
            [sys.executable, fake_kernel.__file__, path, "--version", "5.15.7",
             "--git"], capture_output=True, text=True, check=False)
        check(done.returncode == 0, f"fake_kernel.py failed: {done.stderr}")
        check(done.stdout.strip() == path, f"it printed {done.stdout!r}")
        _, out, _ = make(path, "-s", "kernelversion")
        check(out.strip() == "5.15.7", f"kernelversion {out!r}")
        check(os.path.isdir(os.path.join(path, ".git")), "no .git")
        done = subprocess.run([sys.executable, fake_kernel.__file__, path],
                              capture_output=True, text=True, check=False)
        check(done.returncode == 1, "writing into a non-empty directory "
              "succeeded")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    for tool in ("make", "gcc", "readelf", "git"):
        if not shutil.which(tool):
            print(f"skipped: {tool} is not installed", file=sys.stderr)
            return 77
    ktcache = os.path.abspath(sys.argv[1])
    plugin_dir = os.path.abspath(sys.argv[2]) if len(sys.argv) == 3 else None
    failures = 0
    with tempfile.TemporaryDirectory(prefix="ktc-fake-kernel-") as work:
        suite = Suite(ktcache, plugin_dir, work)
        names = sorted(name for name in dir(suite) if name.startswith("test_"))
        for name in names:
            started = time.monotonic()
            try:
                note = getattr(suite, name)()
            except CheckFailed as error:
                failures += 1
                print(f"FAIL {name}: {error}")
                continue
            except Exception:  # a bug in the test or the tree: a failure
                failures += 1
                print(f"FAIL {name}: raised\n{traceback.format_exc()}")
                continue
            elapsed = time.monotonic() - started
            print(f"ok   {name} ({elapsed:.2f} s)" +
                  (f" [partly skipped: {note}]" if note else ""))
    print(f"{len(names) - failures}/{len(names)} passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
