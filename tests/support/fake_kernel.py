#!/usr/bin/env python3
"""A fake Linux source tree that `ktcache build` can drive in milliseconds.

Usage: fake_kernel.py DIR [--version 6.1.2] [--git] [--tarball OUT.tar.xz]

Writes a tree into DIR (created; it must be empty or absent) that answers
the make targets ktcache's build pipeline runs, the way Kbuild does:

  make -s kernelversion                 VERSION.PATCHLEVEL.SUBLEVEL + EXTRAVERSION
  make -s kernelrelease                 the same + CONFIG_LOCALVERSION
  make ARCH=A defconfig                 arch/$(SRCARCH)/configs/<KBUILD_DEFCONFIG>
  make ARCH=A tinyconfig                allnoconfig + kernel/configs/tiny.config
  make ARCH=A allnoconfig
  make ARCH=A NAME_defconfig            arch/$(SRCARCH)/configs/NAME_defconfig
  make ARCH=A NAME.config               merges kernel/configs/NAME.config
  make ARCH=A olddefconfig              normalises .config
  make ARCH=A [-jN] [CC=..] [CROSS_COMPILE=..] [LLVM=..]   (default goal)
  make clean | mrproper

ARCH is x86_64, x86 or i386 (SRCARCH x86) or arm64 (SRCARCH arm64); it
defaults to the host's, as in the kernel. Any other ARCH (aarch64 too, as
in the kernel) fails. O=DIR puts .config and the outputs in DIR.

The Kconfig files list the symbols the tree knows (see KCONFIG below), each
with a type (bool, tristate, int, hex, string), an optional prompt and a
default; scripts/fake_kbuild.py reads them. olddefconfig keeps every
assignment to a known symbol whose value is valid for its type (the last
one wins; `# CONFIG_X is not set` is n), drops unknown symbols and invalid
values (with a warning on stderr), fills in the defaults and writes a
normalised .config in Kconfig order, `# CONFIG_X is not set` for an n
bool. allnoconfig (and so tinyconfig) sets every bool and tristate that has
a prompt to n and leaves the rest at their defaults. Unlike the real
Kconfig there are no dependencies, choices or conditional defaults.

The default goal (also `make vmlinux`, `bzImage`, `Image`):
  - runs syncconfig (olddefconfig, writing .config only when it changes);
    with no .config it fails as Kbuild does;
  - appends one line to $FAKE_KERNEL_LOG if set, else to <objtree>/.fake-builds
    (count_builds() reads either);
  - writes <objtree>/.fake-build-env: one KEY=VALUE line for each of
    KBUILD_BUILD_TIMESTAMP, _USER, _HOST, _VERSION as seen (`# KEY is not
    set` when absent), MAKEFLAGS, JOBS (from MAKEFLAGS' -j: a number, 1
    without -j, `unlimited` for a bare -j), MAKE_OVERRIDES (the command
    line's VAR=VALUE), ARCH, SRCARCH, CC, CROSS_COMPILE, LLVM, GOALS
    (read_build_env() parses it);
  - sleeps CONFIG_FAKE_SLEEP seconds;
  - with CONFIG_FAKE_FAIL=y prints 400 `  CC      drivers/fake/...` lines,
    then compiles kernel/fake_fail.c, whose #error makes the compiler fail
    with `kernel/fake_fail.c:N:2: error: #error "CONFIG_FAKE_FAIL=y: ..."`,
    and exits 2 after make's `*** [...] Error 1` line;
  - compiles init/main.c, init/version.c (the banner, from the pinned
    KBUILD_BUILD_* values), kernel/configs.c (IKCONFIG: `IKCFG_ST`, the
    gzipped .config between kernel_config_data and kernel_config_data_end,
    `IKCFG_ED`, in .rodata, as the kernel's own), kernel/btf.c (a small
    valid .BTF section with __start_BTF/__stop_BTF when
    CONFIG_DEBUG_INFO_BTF=y), lib/fake.c and kernel/fake_fail.c with $(CC)
    (`$(CROSS_COMPILE)gcc`, or clang with LLVM=1 / LLVM=-14 / LLVM=/prefix/),
    with -g when CONFIG_DEBUG_INFO or CONFIG_DEBUG_INFO_BTF is y, -Os with
    CONFIG_CC_OPTIMIZE_FOR_SIZE, else -O2;
  - links <objtree>/vmlinux: a static ET_EXEC for the compiler's target
    (-nostdlib -static -Wl,--build-id=sha1, entry start_kernel), with
    a symbol table. When ARCH's machine is not the compiler's (ARCH=arm64
    with the host's gcc) and both are 64-bit little-endian, the header's
    e_machine is rewritten to ARCH's (EM_AARCH64 or EM_X86_64): the file is
    a structurally valid ELF of that machine, never meant to run;
  - writes arch/x86/boot/bzImage (a boot-protocol header with "HdrS" and the
    version string, then the gzipped vmlinux) or arch/arm64/boot/Image (the
    arm64 Image header with its "ARM\\x64" magic, then the vmlinux).
A build with the same tree, .config, compiler and pinned KBUILD_BUILD_*
values is byte-for-byte reproducible (the same build-id).

With --git (git=True) the tree is a git repository with one commit (fixed
author, committer and dates, so the same content gives the same commit
id) and a .gitignore that ignores every build output, so that building
leaves the tree clean, as in a kernel tree.

As a module:
  write_tree(path, version="6.1.2", git=False, extra_kconfig="",
             defconfig_lines=(), files=None) -> path
  make_tarball(tree, out, prefix=None) -> out   (.tar.xz/.tar.gz/.tar;
             the top directory is prefix, default linux-<version>)
  read_build_env(objtree) -> dict    (the unset KBUILD_* keys are absent)
  count_builds(objtree_or_log) -> int
  kernel_arch(arch) -> (karch, srcarch, image relative path)
  parse_version(version) -> (VERSION, PATCHLEVEL, SUBLEVEL, EXTRAVERSION)
"""

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile

DEFAULT_VERSION = "6.1.2"

# Build outputs: everything a build or a configuration target writes.
GITIGNORE = """\
# Build outputs of the fake kernel (as a kernel tree's .gitignore does).
*.o
*.gz
*.tmp
.config
.config.old
/vmlinux
/System.map
/include/generated/
arch/*/boot/*Image
.fake-*
__pycache__/
"""

MAKEFILE = """\
# SPDX-License-Identifier: GPL-2.0
VERSION = @VERSION@
PATCHLEVEL = @PATCHLEVEL@
SUBLEVEL = @SUBLEVEL@
EXTRAVERSION = @EXTRAVERSION@
NAME = Fake Sloth

# A fake Linux tree written by ktcache's tests/support/fake_kernel.py. It
# answers the targets `ktcache build` drives, the way Kbuild does, in well
# under a second; scripts/fake_kbuild.py does the work.

KERNELVERSION = $(VERSION)$(if $(PATCHLEVEL),.$(PATCHLEVEL)$(if $(SUBLEVEL),.$(SUBLEVEL)))$(EXTRAVERSION)

.SUFFIXES:
srctree := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
ifneq ($(O),)
objtree := $(abspath $(O))
else
objtree := $(srctree)
endif

SUBARCH := $(shell uname -m | sed -e 's/i.86/x86/' -e 's/x86_64/x86/' -e 's/aarch64.*/arm64/')
ARCH ?= $(SUBARCH)
SRCARCH := $(ARCH)
ifeq ($(ARCH),x86_64)
SRCARCH := x86
endif
ifeq ($(ARCH),i386)
SRCARCH := x86
endif

ifeq ($(SRCARCH),x86)
KBUILD_IMAGE := arch/x86/boot/bzImage
KBUILD_DEFCONFIG := x86_64_defconfig
else ifeq ($(SRCARCH),arm64)
KBUILD_IMAGE := arch/arm64/boot/Image
KBUILD_DEFCONFIG := defconfig
endif

no-arch-goals := kernelversion kernelrelease clean mrproper help
ifneq ($(filter-out $(no-arch-goals),$(if $(MAKECMDGOALS),$(MAKECMDGOALS),all)),)
ifeq ($(wildcard $(srctree)/arch/$(SRCARCH)/Kconfig),)
$(error arch/$(SRCARCH)/Kconfig: No such file or directory (ARCH=$(ARCH) is not supported))
endif
endif

# The toolchain, as the kernel chooses it.
ifneq ($(LLVM),)
ifneq ($(filter %/,$(LLVM)),)
LLVM_PREFIX := $(LLVM)
else ifneq ($(filter -%,$(LLVM)),)
LLVM_SUFFIX := $(LLVM)
endif
CC = $(LLVM_PREFIX)clang$(LLVM_SUFFIX)
else
CC = $(CROSS_COMPILE)gcc
endif

PYTHON3 ?= python3
KBUILD = $(PYTHON3) -B $(srctree)/scripts/fake_kbuild.py \\
	--srctree '$(srctree)' --objtree '$(objtree)' --arch '$(ARCH)' \\
	--srcarch '$(SRCARCH)' --kernelversion '$(KERNELVERSION)'

.PHONY: all vmlinux bzImage Image kernelversion kernelrelease defconfig \\
	tinyconfig allnoconfig olddefconfig syncconfig clean mrproper help

all vmlinux bzImage Image:
\t@$(KBUILD) build --cc '$(CC)' --image '$(KBUILD_IMAGE)' \\
\t\t--cross-compile '$(CROSS_COMPILE)' --llvm '$(LLVM)' \\
\t\t--goals '$(MAKECMDGOALS)'

kernelversion:
\t@echo $(KERNELVERSION)

kernelrelease:
\t@$(KBUILD) kernelrelease

defconfig:
\t@$(KBUILD) defconfig --file '$(KBUILD_DEFCONFIG)'

%_defconfig:
\t@$(KBUILD) defconfig --file '$@'

tinyconfig allnoconfig olddefconfig syncconfig:
\t@$(KBUILD) $@

%.config:
\t@$(KBUILD) fragment --file '$@'

clean mrproper:
\t@$(KBUILD) $@

help:
\t@echo 'Fake kernel targets: all, defconfig, tinyconfig, allnoconfig,'
\t@echo '  NAME_defconfig, NAME.config, olddefconfig, kernelversion,'
\t@echo '  kernelrelease, clean, mrproper'
"""

KCONFIG = """\
# SPDX-License-Identifier: GPL-2.0
mainmenu "Linux/$(SRCARCH) $(KERNELVERSION) Kernel Configuration"

source "arch/$(SRCARCH)/Kconfig"

config 64BIT
	bool
	default y

menu "General setup"

config LOCALVERSION
	string "Local version - append to kernel release"
	default ""
	help
	  Appended to the kernel release (make kernelrelease).

config SMP
	bool "Symmetric multi-processing support"
	default y

config PRINTK
	bool "Enable support for printk"
	default y

config IKCONFIG
	bool "Kernel .config support"
	default n
	help
	  Embeds the gzipped .config in vmlinux (kernel_config_data).

config IKCONFIG_PROC
	bool "Enable access to .config through /proc/config.gz"
	default n

config CC_OPTIMIZE_FOR_SIZE
	bool "Optimize for size (-Os)"
	default n

config BPF_SYSCALL
	bool "Enable bpf() system call"
	default n

config SCHED_CLASS_EXT
	bool "Extensible Scheduling Class"
	default n

config MODULES
	bool "Enable loadable module support"
	default n

config FAKE_TRISTATE
	tristate "A tristate symbol (y, m or n)"
	default m

endmenu

menu "Timers"

config HZ_100
	bool "100 HZ"
	default n

config HZ_250
	bool "250 HZ"
	default y

config HZ_1000
	bool "1000 HZ"
	default n

config HZ
	int "Timer frequency"
	default 250

config PHYSICAL_START
	hex "Physical address where the kernel is loaded"
	default 0x1000000

endmenu

menu "Kernel hacking"

config DEBUG_INFO
	bool "Compile the kernel with debug info"
	default n

config DEBUG_INFO_BTF
	bool "Generate BTF type information"
	default n

endmenu

menu "Fake kernel test hooks"

config FAKE_FAIL
	bool "Make the build fail with a compiler error and a long log"
	default n

config FAKE_SLEEP
	int "Seconds the build sleeps before compiling"
	default 0

endmenu
@EXTRA_KCONFIG@"""

ARCH_KCONFIG = {
    "x86": """\
# SPDX-License-Identifier: GPL-2.0
config X86
	bool
	default y

config X86_64
	bool
	default y
""",
    "arm64": """\
# SPDX-License-Identifier: GPL-2.0
config ARM64
	bool
	default y

config ARM64_VA_BITS
	int "Virtual address space size"
	default 48
""",
}

DEFCONFIGS = {
    "arch/x86/configs/x86_64_defconfig": """\
CONFIG_IKCONFIG=y
CONFIG_IKCONFIG_PROC=y
CONFIG_BPF_SYSCALL=y
CONFIG_DEBUG_INFO=y
""",
    "arch/x86/configs/fake_debug_defconfig": """\
CONFIG_IKCONFIG=y
CONFIG_BPF_SYSCALL=y
CONFIG_DEBUG_INFO=y
CONFIG_DEBUG_INFO_BTF=y
# CONFIG_HZ_250 is not set
CONFIG_HZ_1000=y
CONFIG_HZ=1000
""",
    "arch/x86/configs/tiny.config": """\
# CONFIG_SMP is not set
""",
    "arch/arm64/configs/defconfig": """\
CONFIG_IKCONFIG=y
CONFIG_IKCONFIG_PROC=y
CONFIG_BPF_SYSCALL=y
CONFIG_DEBUG_INFO=y
""",
    "arch/arm64/configs/fake_debug_defconfig": """\
CONFIG_IKCONFIG=y
CONFIG_BPF_SYSCALL=y
CONFIG_DEBUG_INFO=y
CONFIG_DEBUG_INFO_BTF=y
# CONFIG_HZ_250 is not set
CONFIG_HZ_1000=y
CONFIG_HZ=1000
""",
    "kernel/configs/tiny.config": """\
CONFIG_CC_OPTIMIZE_FOR_SIZE=y
# CONFIG_PRINTK is not set
""",
    "kernel/configs/debug.config": """\
CONFIG_DEBUG_INFO=y
CONFIG_DEBUG_INFO_BTF=y
CONFIG_IKCONFIG=y
""",
}

SOURCES = {
    "init/main.c": """\
// SPDX-License-Identifier: GPL-2.0
#include <generated/autoconf.h>

extern const char linux_banner[];
extern int fake_initcall(int level);
extern unsigned long fake_hash(const char *text);

volatile unsigned long fake_boot_state;

static int __attribute__((noinline)) do_initcalls(void)
{
	int level, total = 0;

	for (level = 0; level < 8; level++)
		total += fake_initcall(level);
	return total;
}

void __attribute__((noreturn)) start_kernel(void)
{
	fake_boot_state = fake_hash(linux_banner) + do_initcalls();
#ifdef CONFIG_HZ
	fake_boot_state += CONFIG_HZ;
#endif
	/* Never meant to run: trap rather than spin. */
	__builtin_trap();
}
""",
    "init/version.c": """\
// SPDX-License-Identifier: GPL-2.0
#include <generated/compile.h>
#include <generated/utsrelease.h>

const char linux_banner[] =
	"Linux version " UTS_RELEASE " (" LINUX_COMPILE_BY "@"
	LINUX_COMPILE_HOST ") (" LINUX_COMPILER ") " UTS_VERSION "\\n";
const char linux_proc_banner[] = "%s version %s";
""",
    "kernel/configs.c": """\
// SPDX-License-Identifier: GPL-2.0
#include <generated/autoconf.h>

#ifdef CONFIG_IKCONFIG
/*
 * As the kernel's kernel/configs.c: the gzipped .config between markers,
 * kernel_config_data on its first byte, kernel_config_data_end past its
 * last.
 */
asm (
"	.pushsection .rodata, \\"a\\"		\\n"
"	.ascii \\"IKCFG_ST\\"			\\n"
"	.global kernel_config_data		\\n"
"kernel_config_data:				\\n"
"	.incbin \\"kernel/config_data.gz\\"	\\n"
"	.global kernel_config_data_end		\\n"
"kernel_config_data_end:			\\n"
"	.ascii \\"IKCFG_ED\\"			\\n"
"	.popsection				\\n"
);
#endif
""",
    "kernel/btf.c": """\
// SPDX-License-Identifier: GPL-2.0
#include <generated/autoconf.h>

#ifdef CONFIG_DEBUG_INFO_BTF
/*
 * A valid BTF blob (what pahole would write, cut down to two types: int
 * and unsigned long) in an allocated .BTF section, bounded by
 * __start_BTF and __stop_BTF as in vmlinux.
 */
asm (
"	.pushsection .BTF, \\"a\\"			\\n"
"	.global __start_BTF			\\n"
"__start_BTF:					\\n"
"	.short 0xeb9f				\\n" /* magic */
"	.byte 1, 0				\\n" /* version, flags */
"	.long 24				\\n" /* hdr_len */
"	.long 0, 32				\\n" /* type_off, type_len */
"	.long 32, 23				\\n" /* str_off, str_len */
"	.long 1, 0x01000000, 4, 0x01000020	\\n" /* [1] int */
"	.long 5, 0x01000000, 8, 0x00000040	\\n" /* [2] unsigned long */
"	.asciz \\"\\"				\\n"
"	.asciz \\"int\\"				\\n"
"	.asciz \\"long unsigned int\\"		\\n"
"	.global __stop_BTF			\\n"
"__stop_BTF:					\\n"
"	.popsection				\\n"
);
#endif
""",
    "lib/fake.c": """\
// SPDX-License-Identifier: GPL-2.0
#include <generated/autoconf.h>

int fake_initcall_count;
static const int fake_weights[8] = { 3, 1, 4, 1, 5, 9, 2, 6 };

unsigned long __attribute__((noinline)) fake_hash(const char *text)
{
	unsigned long hash = 5381;

	while (*text)
		hash = hash * 33 + (unsigned char)*text++;
	return hash;
}

int __attribute__((noinline)) fake_initcall(int level)
{
	fake_initcall_count++;
	return fake_weights[level & 7] * level;
}

int fake_schedule(int cpu)
{
#ifdef CONFIG_SMP
	return cpu % 4;
#else
	return 0;
#endif
}
""",
    "kernel/fake_fail.c": """\
// SPDX-License-Identifier: GPL-2.0
#include <generated/autoconf.h>

/* CONFIG_FAKE_FAIL=y makes the build fail here, as a compiler error. */
#ifdef CONFIG_FAKE_FAIL
#error "CONFIG_FAKE_FAIL=y: this fake kernel refuses to build"
#endif
int fake_fail_checked;
""",
}

# Compiled in this order; fake_fail.c last, so that its error ends the log.
OBJECTS = ["init/main", "init/version", "kernel/configs", "kernel/btf",
           "lib/fake", "kernel/fake_fail"]

KBUILD_SCRIPT = r'''#!/usr/bin/env python3
"""The fake kernel's Kconfig and build (see tests/support/fake_kernel.py in
ktcache). Run by the tree's Makefile; stdlib only."""

import argparse
import gzip
import os
import re
import shlex
import struct
import subprocess
import sys
import time

OBJECTS = @OBJECTS@
BUILD_ENV = ("KBUILD_BUILD_TIMESTAMP", "KBUILD_BUILD_USER",
             "KBUILD_BUILD_HOST", "KBUILD_BUILD_VERSION")
EM_X86_64 = 62
EM_AARCH64 = 183


def silent():
    words = os.environ.get("MAKEFLAGS", "").split()
    return bool(words) and not words[0].startswith("-") and "s" in words[0]


def say(text):
    if not silent():
        print(text, flush=True)


def warn(text):
    print(text, file=sys.stderr, flush=True)


class Symbol:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.prompt = None
        self.default = None


def parse_kconfig(args):
    """The symbols of Kconfig and what it sources, in order."""
    symbols = {}
    variables = {"SRCARCH": args.srcarch, "ARCH": args.arch,
                 "KERNELVERSION": args.kernelversion}

    def expand(text):
        return re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), ""),
                      text)

    def read(relative):
        path = os.path.join(args.srctree, expand(relative))
        with open(path, encoding="utf-8") as lines:
            lines = lines.read().splitlines()
        current = None
        help_indent = None
        for number, raw in enumerate(lines, 1):
            if help_indent is not None:
                indent = len(raw) - len(raw.lstrip())
                if not raw.strip() or indent > help_indent:
                    continue
                help_indent = None
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split(None, 1)
            keyword, rest = words[0], (words[1] if len(words) > 1 else "")
            where = f"{relative}:{number}"
            if keyword == "config":
                current = symbols.setdefault(rest, Symbol(rest))
            elif keyword in ("bool", "tristate", "int", "hex", "string"):
                if current is None:
                    sys.exit(f"{where}: {keyword} outside a config entry")
                current.type = keyword
                if rest:
                    current.prompt = rest.strip('"')
            elif keyword == "prompt":
                current.prompt = rest.strip('"')
            elif keyword == "default":
                if current is None:
                    sys.exit(f"{where}: default outside a config entry")
                if " if " in rest:
                    sys.exit(f"{where}: conditional defaults are not "
                             "supported by the fake Kconfig")
                current.default = unquote(rest) if rest.startswith('"') \
                    else rest
            elif keyword == "help":
                help_indent = len(raw) - len(raw.lstrip())
            elif keyword == "source":
                read(rest.strip('"'))
                current = None
            elif keyword in ("menu", "endmenu", "mainmenu", "comment"):
                current = None
            else:
                sys.exit(f"{where}: the fake Kconfig does not support "
                         f"{keyword!r}")
    read("Kconfig")
    for symbol in symbols.values():
        if symbol.type is None:
            sys.exit(f"Kconfig: CONFIG_{symbol.name} has no type")
        if symbol.default is None:
            symbol.default = {"string": "", "int": "0", "hex": "0x0"}.get(
                symbol.type, "n")
    return symbols


def unquote(text):
    if len(text) < 2 or not text.startswith('"') or not text.endswith('"'):
        return None
    out, escaped = [], False
    for char in text[1:-1]:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None
        else:
            out.append(char)
    return None if escaped else "".join(out)


def valid(symbol, value):
    """The value normalised for the symbol's type, or None."""
    if symbol.type == "bool":
        return value if value in ("y", "n") else None
    if symbol.type == "tristate":
        return value if value in ("y", "m", "n") else None
    if symbol.type == "int":
        return str(int(value)) if re.fullmatch(r"-?[0-9]+", value) else None
    if symbol.type == "hex":
        if re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", value):
            return value if value.lower().startswith("0x") else "0x" + value
        return None
    if value.startswith('"'):
        return unquote(value)
    return value


def read_assignments(path, symbols, values):
    """Applies a .config or fragment to `values`: the last assignment wins;
    unknown symbols and invalid values are dropped with a warning."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as lines:
            lines = lines.read().splitlines()
    except FileNotFoundError:
        return False
    name_of = os.path.basename(path)
    seen = set()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        match = re.fullmatch(r"# CONFIG_(\w+) is not set", line)
        unset = match is not None
        if unset:
            name, value = match.group(1), "n"
        else:
            match = re.fullmatch(r"CONFIG_(\w+)=(.*)", line)
            if not match:
                if line and not line.startswith("#"):
                    warn(f"{name_of}:{number}:warning: unexpected data: {line}")
                continue
            name, value = match.group(1), match.group(2)
        symbol = symbols.get(name)
        if symbol is None:
            warn(f"{name_of}:{number}:warning: unknown symbol: CONFIG_{name}")
            continue
        if unset and symbol.type not in ("bool", "tristate"):
            continue  # as Kconfig: "is not set" means nothing for an int
        normal = valid(symbol, value)
        if normal is None:
            warn(f"{name_of}:{number}:warning: symbol value '{value}' invalid "
                 f"for CONFIG_{name}")
            continue
        if name in seen and values[name] != normal:
            warn(f"{name_of}:{number}:warning: override: reassigning to "
                 f"symbol {name}")
        values[name] = normal
        seen.add(name)
    return True


def render(args, symbols, values):
    out = ["#", "# Automatically generated file; DO NOT EDIT.",
           f"# Linux/{args.srcarch} {args.kernelversion} Kernel Configuration",
           "#"]
    for name, symbol in symbols.items():
        value = values.get(name, symbol.default)
        if symbol.type in ("bool", "tristate") and value == "n":
            out.append(f"# CONFIG_{name} is not set")
        elif symbol.type == "string":
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'CONFIG_{name}="{escaped}"')
        else:
            out.append(f"CONFIG_{name}={value}")
    return "\n".join(out) + "\n"


def config_path(args):
    return os.path.join(args.objtree, ".config")


def write_config(args, symbols, values, announce=True):
    text = render(args, symbols, values)
    path = config_path(args)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as old:
            previous = old.read()
    except FileNotFoundError:
        previous = None
    if previous == text:
        if announce:
            say("#\n# No change to configuration in '.config'\n#")
        return
    os.makedirs(args.objtree, exist_ok=True)
    if previous is not None:
        with open(path + ".old", "w", encoding="utf-8",
                  errors="surrogateescape") as backup:
            backup.write(previous)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)
    if announce:
        say("#\n# configuration written to .config\n#")


def final_values(args, symbols):
    values = {}
    read_assignments(config_path(args), symbols, values)
    return {name: values.get(name, symbol.default)
            for name, symbol in symbols.items()}


def base_of(args, name):
    for directory in (f"arch/{args.srcarch}/configs", "kernel/configs"):
        path = os.path.join(args.srctree, directory, name)
        if os.path.isfile(path):
            return path
    sys.exit(f"***\n*** Can't find default configuration "
             f"\"arch/{args.srcarch}/configs/{name}\"!\n***")


def cmd_defconfig(args, symbols):
    path = base_of(args, args.file)
    say(f"*** Default configuration is based on '{args.file}'")
    values = {}
    read_assignments(path, symbols, values)
    write_config(args, symbols, values)


def allno(symbols):
    return {name: "n" for name, symbol in symbols.items()
            if symbol.type in ("bool", "tristate") and symbol.prompt}


def cmd_allnoconfig(args, symbols):
    write_config(args, symbols, allno(symbols))


def cmd_tinyconfig(args, symbols):
    values = allno(symbols)
    for name in ("kernel/configs/tiny.config",
                 f"arch/{args.srcarch}/configs/tiny.config"):
        path = os.path.join(args.srctree, name)
        if os.path.isfile(path):
            read_assignments(path, symbols, values)
    write_config(args, symbols, values)


def cmd_fragment(args, symbols):
    path = base_of(args, args.file)
    values = {}
    read_assignments(config_path(args), symbols, values)
    say(f"Using .config as base\nMerging {os.path.relpath(path, args.srctree)}")
    read_assignments(path, symbols, values)
    write_config(args, symbols, values)


def cmd_olddefconfig(args, symbols, announce=True):
    values = {}
    read_assignments(config_path(args), symbols, values)
    write_config(args, symbols, values, announce)


def release(args, values):
    local = values.get("LOCALVERSION", "")
    return args.kernelversion + local + os.environ.get("LOCALVERSION", "")


def cmd_kernelrelease(args, symbols):
    if not os.path.isfile(config_path(args)):
        sys.exit("kernelrelease not valid - run 'make prepare' to update it")
    print(release(args, final_values(args, symbols)))


def cmd_clean(args, symbols, mrproper=False):
    doomed = ["vmlinux", "System.map", "kernel/config_data.gz",
              "arch/x86/boot/bzImage", "arch/arm64/boot/Image"]
    doomed += [o + ".o" for o in OBJECTS]
    if mrproper:
        doomed += [".config", ".config.old"]
        doomed += [os.path.join("include/generated", name) for name in
                   ("autoconf.h", "compile.h", "utsrelease.h")]
    for name in doomed:
        try:
            os.unlink(os.path.join(args.objtree, name))
        except FileNotFoundError:
            pass


def jobs_of(makeflags):
    jobs = "1"
    for word in makeflags.split():
        if word == "--":
            break
        match = re.fullmatch(r"-j([0-9]*)", word) or re.fullmatch(
            r"--jobs(?:=([0-9]*))?", word)
        if match:
            jobs = match.group(1) or "unlimited"
    return jobs


def overrides_of(makeflags):
    words = makeflags.split(" -- ", 1)
    return words[1].strip() if len(words) == 2 else ""


def record(args):
    makeflags = os.environ.get("MAKEFLAGS", "")
    lines = []
    for name in BUILD_ENV:
        if name in os.environ:
            lines.append(f"{name}={os.environ[name]}")
        else:
            lines.append(f"# {name} is not set")
    lines += [f"MAKEFLAGS={makeflags}", f"JOBS={jobs_of(makeflags)}",
              f"MAKE_OVERRIDES={overrides_of(makeflags)}",
              f"ARCH={args.arch}", f"SRCARCH={args.srcarch}",
              f"CC={args.cc}", f"CROSS_COMPILE={args.cross_compile}",
              f"LLVM={args.llvm}", f"GOALS={args.goals}"]
    text = "".join(line.replace("\n", " ") + "\n" for line in lines)
    path = os.path.join(args.objtree, ".fake-build-env")
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(path + ".tmp", path)

    log = os.environ.get("FAKE_KERNEL_LOG") or os.path.join(
        args.objtree, ".fake-builds")
    entry = (f"build pid={os.getpid()} time={time.time():.3f} "
             f"arch={args.arch} jobs={jobs_of(makeflags)} "
             f"objtree={args.objtree}\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, entry.encode())
    finally:
        os.close(fd)


def c_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_if_changed(path, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(path, "rb" if mode == "wb" else "r") as old:
            if old.read() == data:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", mode) as out:
        out.write(data)
    os.replace(path + ".tmp", path)


def compiler_version(cc):
    try:
        out = subprocess.run(cc + ["--version"], capture_output=True,
                             text=True, check=False).stdout
    except OSError:
        return cc[0]
    return out.splitlines()[0] if out else cc[0]


def generate(args, values, cc):
    gen = os.path.join(args.objtree, "include", "generated")
    lines = ["/* Automatically generated file; DO NOT EDIT. */"]
    for name, value in values.items():
        symbol = args.symbols[name]
        if symbol.type in ("bool", "tristate"):
            if value == "y":
                lines.append(f"#define CONFIG_{name} 1")
            elif value == "m":
                lines.append(f"#define CONFIG_{name}_MODULE 1")
        elif symbol.type == "string":
            lines.append(f"#define CONFIG_{name} {c_string(value)}")
        else:
            lines.append(f"#define CONFIG_{name} {value}")
    write_if_changed(os.path.join(gen, "autoconf.h"), "\n".join(lines) + "\n")

    env = os.environ
    timestamp = env.get("KBUILD_BUILD_TIMESTAMP") or time.strftime(
        "%a %b %d %H:%M:%S UTC %Y", time.gmtime())
    user = env.get("KBUILD_BUILD_USER") or env.get("USER") or "root"
    host = env.get("KBUILD_BUILD_HOST") or os.uname().nodename
    number = env.get("KBUILD_BUILD_VERSION") or "1"
    smp = " SMP" if values.get("SMP") == "y" else ""
    compile_h = (
        f"#define UTS_VERSION {c_string(f'#{number}{smp} {timestamp}')}\n"
        f"#define LINUX_COMPILE_BY {c_string(user)}\n"
        f"#define LINUX_COMPILE_HOST {c_string(host)}\n"
        f"#define LINUX_COMPILER {c_string(compiler_version(cc))}\n")
    write_if_changed(os.path.join(gen, "compile.h"), compile_h)
    write_if_changed(os.path.join(gen, "utsrelease.h"),
                     f"#define UTS_RELEASE {c_string(release(args, values))}\n")

    with open(config_path(args), "rb") as config:
        data = gzip.compress(config.read(), compresslevel=9, mtime=0)
    write_if_changed(os.path.join(args.objtree, "kernel", "config_data.gz"),
                     data)
    return f"#{number}{smp} {timestamp}"


def fail(message, code=2):
    warn(message)
    sys.exit(code)


def compile_all(args, values, cc):
    flags = ["-Os" if values.get("CC_OPTIMIZE_FOR_SIZE") == "y" else "-O2",
             "-fno-pie", "-fno-stack-protector", "-ffreestanding",
             "-fno-common", "-Wall", "-I", os.path.join(args.srctree, "include"),
             "-I", os.path.join(args.objtree, "include")]
    if values.get("DEBUG_INFO") == "y" or values.get("DEBUG_INFO_BTF") == "y":
        flags.append("-g")
    for name in OBJECTS:
        if name == "kernel/fake_fail" and values.get("FAKE_FAIL") == "y":
            for number in range(400):
                say(f"  CC      drivers/fake/fake{number:03d}.o")
        source = os.path.join(args.srctree, name + ".c")
        obj = os.path.join(args.objtree, name + ".o")
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        say(f"  CC      {name}.o")
        try:
            done = subprocess.run(cc + flags + ["-c", "-o", obj, source],
                                  cwd=args.objtree, check=False)
        except OSError as error:
            fail(f"make[2]: {cc[0]}: {error.strerror}\n"
                 f"make[2]: *** [scripts/Makefile.build:250: {name}.o] "
                 "Error 127")
        if done.returncode != 0:
            fail(f"make[2]: *** [scripts/Makefile.build:250: {name}.o] "
                 "Error 1\nmake[1]: *** [scripts/Makefile.build:500: "
                 f"{os.path.dirname(name)}] Error 2")
    vmlinux = os.path.join(args.objtree, "vmlinux")
    say("  LD      vmlinux")
    objects = [os.path.join(args.objtree, name + ".o") for name in OBJECTS]
    done = subprocess.run(
        cc + ["-nostdlib", "-static", "-Wl,--build-id=sha1",
              "-Wl,-e,start_kernel", "-o", vmlinux + ".tmp"] + objects,
        cwd=args.objtree, check=False)
    if done.returncode != 0:
        fail("make[1]: *** [scripts/Makefile.vmlinux:34: vmlinux] Error 1")
    retarget(args, vmlinux + ".tmp")
    os.replace(vmlinux + ".tmp", vmlinux)
    return vmlinux


def retarget(args, path):
    """Rewrites e_machine when ARCH's machine is not the compiler's (both
    64-bit little-endian): a valid ELF of ARCH's machine, never run."""
    wanted = EM_AARCH64 if args.srcarch == "arm64" else EM_X86_64
    with open(path, "r+b") as elf:
        ident = elf.read(20)
        if len(ident) < 20 or ident[:4] != b"\x7fELF":
            fail(f"{path}: the linker wrote no ELF file")
        machine = struct.unpack_from("<H", ident, 18)[0]
        if machine == wanted or ident[4] != 2 or ident[5] != 1:
            return
        if machine not in (EM_X86_64, EM_AARCH64):
            return
        elf.seek(18)
        elf.write(struct.pack("<H", wanted))
    say(f"  FAKE    vmlinux retargeted from machine {machine} to {wanted}")


def write_image(args, vmlinux, banner):
    with open(vmlinux, "rb") as source:
        kernel = source.read()
    version = f"{release(args, args.values)} {banner}".encode() + b"\0"
    if args.srcarch == "x86":
        setup = bytearray(0x600)
        setup[0x1f1] = 2                                  # setup_sects
        setup[0x1f2] = 1                                  # root_flags: ro
        setup[0x1fe:0x200] = b"\x55\xaa"                  # boot flag
        setup[0x202:0x206] = b"HdrS"                      # header magic
        struct.pack_into("<H", setup, 0x206, 0x020f)      # protocol 2.15
        struct.pack_into("<H", setup, 0x20e, 0x200)       # version at 0x400
        setup[0x211] = 1                                  # LOADED_HIGH
        setup[0x400:0x400 + len(version[:0x1ff])] = version[:0x1ff]
        image = bytes(setup) + gzip.compress(kernel, mtime=0)
    else:
        header = bytearray(64)
        struct.pack_into("<IIQQQQQQII", header, 0, 0xfa405a4d, 0,
                         0, 64 + len(kernel), 0xa, 0, 0, 0, 0x644d5241, 0)
        image = bytes(header) + kernel
    path = os.path.join(args.objtree, args.image)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as out:
        out.write(image)
    os.replace(path + ".tmp", path)
    return path


def cmd_build(args, symbols):
    if not os.path.isfile(config_path(args)):
        fail("***\n*** Configuration file \".config\" not found!\n***\n"
             "*** Please run some configurator (e.g. \"make oldconfig\" or\n"
             "*** \"make menuconfig\" or \"make xconfig\").\n***\n"
             "make[2]: *** [scripts/kconfig/Makefile:85: syncconfig] Error 1")
    if not args.image:
        fail(f"arch/{args.srcarch}: no boot image for ARCH={args.arch}")
    record(args)
    cmd_olddefconfig(args, symbols, announce=False)
    values = final_values(args, symbols)
    args.symbols = symbols
    args.values = values
    sleep = int(values.get("FAKE_SLEEP") or 0)
    if sleep > 0:
        say(f"  FAKE    sleeping {sleep} s")
        time.sleep(sleep)
    cc = shlex.split(args.cc) or ["gcc"]
    banner = generate(args, values, cc)
    vmlinux = compile_all(args, values, cc)
    image = write_image(args, vmlinux, banner)
    say(f"Kernel: {os.path.relpath(image, args.objtree)} is ready  "
        f"({banner.split()[0]})")


def main():
    parser = argparse.ArgumentParser(prog="fake_kbuild.py")
    parser.add_argument("--srctree", required=True)
    parser.add_argument("--objtree", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--srcarch", required=True)
    parser.add_argument("--kernelversion", required=True)
    parser.add_argument("command")
    parser.add_argument("--file")
    parser.add_argument("--cc", default="gcc")
    parser.add_argument("--image", default="")
    parser.add_argument("--cross-compile", default="")
    parser.add_argument("--llvm", default="")
    parser.add_argument("--goals", default="")
    args = parser.parse_args()
    os.makedirs(args.objtree, exist_ok=True)
    symbols = parse_kconfig(args)
    commands = {
        "defconfig": cmd_defconfig,
        "allnoconfig": cmd_allnoconfig,
        "tinyconfig": cmd_tinyconfig,
        "fragment": cmd_fragment,
        "olddefconfig": cmd_olddefconfig,
        "syncconfig": lambda a, s: cmd_olddefconfig(a, s, announce=False),
        "kernelrelease": cmd_kernelrelease,
        "clean": cmd_clean,
        "mrproper": lambda a, s: cmd_clean(a, s, mrproper=True),
        "build": cmd_build,
    }
    if args.command not in commands:
        parser.error(f"unknown command {args.command}")
    commands[args.command](args, symbols)


if __name__ == "__main__":
    main()
'''


def parse_version(version):
    """(VERSION, PATCHLEVEL, SUBLEVEL, EXTRAVERSION) of "6.1.2", "6.12-rc3"
    (SUBLEVEL 0, as a real tree's Makefile has it), "6.1.2-foo"."""
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(.*)", version)
    if not match or re.search(r"\s", match.group(4)):
        raise ValueError(f"not a kernel version: {version!r}")
    return (match.group(1), match.group(2), match.group(3) or "0",
            match.group(4))


def kernel_arch(arch):
    """ktcache's arch -> (make's ARCH, SRCARCH, the boot image's path)."""
    if arch in ("x86_64", "x86"):
        return "x86_64", "x86", "arch/x86/boot/bzImage"
    if arch in ("aarch64", "arm64"):
        return "arm64", "arm64", "arch/arm64/boot/Image"
    raise ValueError(f"unsupported arch {arch!r}")


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, mode)


def write_tree(path, version=DEFAULT_VERSION, git=False, extra_kconfig="",
               defconfig_lines=(), files=None):
    """Writes the fake tree into `path` (created; must be empty or absent)
    and returns `path`. extra_kconfig is appended to the root Kconfig;
    defconfig_lines are appended to both arches' default defconfig; files
    maps relative paths to extra (or replacement) file contents."""
    if os.path.exists(path) and os.listdir(path):
        raise FileExistsError(f"{path} exists and is not empty")
    fields = parse_version(version)
    makefile = MAKEFILE
    for name, value in zip(("VERSION", "PATCHLEVEL", "SUBLEVEL",
                            "EXTRAVERSION"), fields):
        makefile = makefile.replace(f"@{name}@", value)
    # "EXTRAVERSION =" with nothing after it, as in a release's Makefile.
    makefile = makefile.replace("EXTRAVERSION = \n", "EXTRAVERSION =\n")
    contents = {
        "Makefile": makefile,
        "Kconfig": KCONFIG.replace("@EXTRA_KCONFIG@", extra_kconfig),
        "scripts/fake_kbuild.py": KBUILD_SCRIPT.replace(
            "@OBJECTS@", repr(OBJECTS)),
        "README": f"A fake Linux {version} tree for ktcache's tests "
                  "(tests/support/fake_kernel.py).\n",
        ".gitignore": GITIGNORE,
    }
    for srcarch, text in ARCH_KCONFIG.items():
        contents[f"arch/{srcarch}/Kconfig"] = text
    contents.update(DEFCONFIGS)
    extra = "".join(line.rstrip("\n") + "\n" for line in defconfig_lines)
    if extra:
        for name in ("arch/x86/configs/x86_64_defconfig",
                     "arch/arm64/configs/defconfig"):
            contents[name] += extra
    contents.update(SOURCES)
    contents.update(files or {})
    os.makedirs(path, exist_ok=True)
    for relative, text in contents.items():
        _write(os.path.join(path, relative), text,
               0o755 if relative.endswith(".py") else 0o644)
    if git:
        _git_commit(path, version)
    return path


def _git_commit(path, version):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("GIT_"):
            del env[key]
    env.update({
        "GIT_AUTHOR_NAME": "Fake Torvalds", "GIT_AUTHOR_EMAIL": "fake@kernel",
        "GIT_COMMITTER_NAME": "Fake Torvalds",
        "GIT_COMMITTER_EMAIL": "fake@kernel",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": path,
    })
    base = ["git", "-c", "init.defaultBranch=master", "-c",
            "commit.gpgsign=false", "-c", "core.autocrlf=false"]
    for argv in (["init", "-q"], ["add", "-A"],
                 ["commit", "-q", "-m", f"Linux {version}"]):
        subprocess.run(base + argv, cwd=path, env=env, check=True,
                       stdout=subprocess.DEVNULL)


def _version_of(tree):
    fields = {}
    with open(os.path.join(tree, "Makefile"), encoding="utf-8") as makefile:
        for line in makefile:
            match = re.fullmatch(
                r"(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(.*?)\s*",
                line.rstrip("\n"))
            if match and match.group(1) not in fields:
                fields[match.group(1)] = match.group(2)
    version = fields.get("VERSION", "0")
    if fields.get("PATCHLEVEL"):
        version += "." + fields["PATCHLEVEL"]
        if fields.get("SUBLEVEL"):
            version += "." + fields["SUBLEVEL"]
    return version + fields.get("EXTRAVERSION", "")


def make_tarball(tree, out, prefix=None):
    """A release-style tarball of `tree` (no .git, no build outputs) under
    one top directory, default linux-<version>; deterministic. The
    compression follows the name: .tar.xz, .tar.gz or .tar."""
    prefix = prefix or "linux-" + _version_of(tree)
    mode = "w:xz" if out.endswith(".xz") else \
        "w:gz" if out.endswith(".gz") else "w"
    skip = {".git", "__pycache__", ".config", ".config.old", "vmlinux",
            "System.map"}

    def output(relative):
        parts = relative.split(os.sep)
        name = parts[-1]
        return (name in skip or name.startswith(".fake-") or
                name.endswith((".o", ".gz", ".tmp")) or
                relative.startswith(os.path.join("include", "generated")) or
                (len(parts) == 4 and parts[0] == "arch" and
                 parts[2] == "boot" and name.endswith("Image")))

    def clean(info):
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 1704067200
        return info

    with tarfile.open(out, mode) as tar:
        tar.add(tree, arcname=prefix, recursive=False, filter=clean)
        for root, dirs, names in os.walk(tree):
            dirs[:] = sorted(d for d in dirs if not output(
                os.path.relpath(os.path.join(root, d), tree)))
            for name in dirs + sorted(names):
                full = os.path.join(root, name)
                relative = os.path.relpath(full, tree)
                if output(relative):
                    continue
                arcname = os.path.join(prefix, relative)
                tar.add(full, arcname=arcname, recursive=False, filter=clean)
    return out


def read_build_env(objtree):
    """The last build's <objtree>/.fake-build-env as a dict (KBUILD_*
    keys that were not set are absent)."""
    values = {}
    with open(os.path.join(objtree, ".fake-build-env"),
              encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            values[key] = value
    return values


def count_builds(objtree_or_log):
    """How many default-goal builds the log recorded: a $FAKE_KERNEL_LOG
    file, or a tree (its .fake-builds); 0 when there is none."""
    path = objtree_or_log
    if os.path.isdir(path):
        path = os.path.join(path, ".fake-builds")
    try:
        with open(path, encoding="utf-8") as lines:
            return sum(1 for line in lines if line.startswith("build "))
    except FileNotFoundError:
        return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Writes a fake Linux source tree for ktcache's tests.")
    parser.add_argument("dir")
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--git", action="store_true",
                        help="make the tree a git repository with one commit")
    parser.add_argument("--tarball", metavar="OUT",
                        help="also write a release tarball of the tree "
                             "(.tar.xz, .tar.gz or .tar)")
    args = parser.parse_args(argv)
    try:
        write_tree(args.dir, version=args.version, git=args.git)
        if args.tarball:
            make_tarball(args.dir, args.tarball)
    except (OSError, ValueError, subprocess.CalledProcessError) as error:
        print(f"fake_kernel.py: {error}", file=sys.stderr)
        return 1
    print(os.path.abspath(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
