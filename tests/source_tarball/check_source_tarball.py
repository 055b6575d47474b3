#!/usr/bin/env python3
"""The tarball source plugin (source_tarball.so) through the ktcache CLI.

Usage: check_source_tarball.py KTCACHE PLUGIN_DIR [CASE...]

Runs the named cases (all of them without a CASE). Each case starts an HTTP
server on 127.0.0.1 (an ephemeral port, in a thread of this process) that
plays kernel.org: releases.json, a mirror with v6.x/linux-*.tar.xz and a
clear-signed v6.x/sha256sums.asc (with a fake signature block), an RC
directory, and arbitrary files; it answers GET and HEAD and counts the
requests per method and path, so a case can tell what ktcache fetched (that
describing a URL with sums beside it does not download the tarball, say).
ktcache reaches it through KTCACHE_KERNEL_MIRROR, KTCACHE_RELEASES_URL and
KTCACHE_RC_URL; no other network is used. The tarballs are small kernel-like
trees made with tarfile; the hostile ones are made entry by entry.

Exits 0 when every case passed, 1 when one failed, 77 when every case run
was skipped.
"""

import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3
EXIT_PLUGIN = 7
EXIT_NETWORK = 9
EXIT_CANCELLED = 130
EXIT_SKIP = 77

BIG_SIZE = (1 << 20) + 12345
IN_TREE_LINK = "scripts/dtc/include-prefixes/arm"
IN_TREE_TARGET = "../../../arch/arm/boot/dts"
FAKE_SIGNATURE = ("-----BEGIN PGP SIGNATURE-----\n\n"
                  "iQEzBAEBCAAdFiEEZmFrZSBzaWduYXR1cmUgZm9yIHRlc3Rz\n"
                  "=fake\n-----END PGP SIGNATURE-----\n")


class CheckFailed(Exception):
    pass


class Skipped(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# -- the server ----------------------------------------------------------------


class Route:
    def __init__(self, body=b"", content_type="application/octet-stream",
                 status=200, delay=0.0):
        self.body = body
        self.content_type = content_type
        self.status = status
        # Seconds between 16 KiB chunks: a slow download.
        self.delay = delay
        self.started = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer(with_body=True)

    def do_HEAD(self):
        self.answer(with_body=False)

    def answer(self, with_body):
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        with owner.lock:
            key = (self.command, path)
            owner.counts[key] = owner.counts.get(key, 0) + 1
            route = owner.routes.get(path)
        if route is None:
            route = Route(b"not found\n", "text/plain", 404)
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        if not with_body:
            return
        try:
            if route.delay == 0:
                self.wfile.write(route.body)
                return
            for offset in range(0, len(route.body), 16384):
                self.wfile.write(route.body[offset:offset + 16384])
                self.wfile.flush()
                route.started.set()
                time.sleep(route.delay)
        except (BrokenPipeError, ConnectionResetError):
            pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a probe window
    # (16 and more connections at once), which then wait a second for
    # their retransmission.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that hangs up (ktcache cancelled, or done with a
        # keep-alive connection) is no error of the test's.
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class Server:
    def __init__(self):
        self.routes = {}
        self.counts = {}
        self.lock = threading.Lock()
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path, body, content_type="application/octet-stream",
            status=200, delay=0.0):
        route = Route(body, content_type, status, delay)
        with self.lock:
            self.routes[path] = route
        return route

    def count(self, method, path):
        with self.lock:
            return self.counts.get((method, path), 0)

    def requests(self):
        with self.lock:
            return dict(self.counts)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- tarballs ---------------------------------------------------------------------


def makefile_for(version):
    """A kernel Makefile's version lines: 6.12.3, 6.12 (SUBLEVEL 0),
    6.15-rc3 (EXTRAVERSION -rc3)."""
    base, _, rc = version.partition("-rc")
    numbers = base.split(".") + ["0"]
    extra = f"-rc{rc}" if rc else ""
    return (f"# SPDX-License-Identifier: GPL-2.0\nVERSION = {numbers[0]}\n"
            f"PATCHLEVEL = {numbers[1]}\nSUBLEVEL = {numbers[2]}\n"
            f"EXTRAVERSION = {extra}\nNAME = Test Kernel\n").encode()


class Entry:
    """One tar member: kind is file, dir, symlink, hardlink, chr, blk or
    fifo."""

    def __init__(self, name, kind="file", data=b"", target="", mode=None):
        self.name = name
        self.kind = kind
        self.data = data
        self.target = target
        self.mode = mode


def kernel_entries(top, version):
    """A small kernel-like tree, with an in-tree '..' symlink and a hard
    link as real kernel tarballs have."""
    return [
        Entry(top + "/", "dir"),
        Entry(top + "/Makefile", data=makefile_for(version)),
        Entry(top + "/Kconfig", data=b'mainmenu "Test"\n'),
        Entry(top + "/README", data=b"Linux kernel\n" * 100),
        Entry(top + "/arch/", "dir"),
        Entry(top + "/arch/arm/boot/dts/", "dir"),
        Entry(top + "/arch/arm/boot/dts/board.dts", data=b"/dts-v1/;\n"),
        Entry(top + "/scripts/", "dir"),
        Entry(top + "/scripts/run.sh", data=b"#!/bin/sh\n", mode=0o755),
        Entry(top + "/scripts/dtc/include-prefixes/", "dir"),
        Entry(top + "/" + IN_TREE_LINK, "symlink", target=IN_TREE_TARGET),
        Entry(top + "/scripts/same.sh", "hardlink",
              target=top + "/scripts/run.sh"),
        # Bigger than one of ktcache's read chunks and queue blocks.
        Entry(top + "/big.bin", data=os.urandom(BIG_SIZE)),
    ]


def make_tar(entries, compression="xz"):
    """The tarball of `entries`; compression is "", "gz", "xz", "bz2" or
    "zst" (through the zstd program)."""
    buffer = io.BytesIO()
    # The fastest levels: the contents are mostly random bytes.
    levels = {"gz": {"compresslevel": 1}, "bz2": {"compresslevel": 1},
              "xz": {"preset": 0}}
    options = levels.get(compression, {})
    mode = "w:" + compression if compression in levels else "w"
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.PAX_FORMAT,
                      **options) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime = 1700000000
            info.mode = entry.mode if entry.mode is not None else 0o644
            data = None
            if entry.kind == "file":
                info.size = len(entry.data)
                data = io.BytesIO(entry.data)
            elif entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = entry.mode if entry.mode is not None else 0o755
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                info.mode = 0o777
            elif entry.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = entry.target
            elif entry.kind in ("chr", "blk"):
                info.type = tarfile.CHRTYPE if entry.kind == "chr" \
                    else tarfile.BLKTYPE
                info.devmajor, info.devminor = 1, 3
            elif entry.kind == "fifo":
                info.type = tarfile.FIFOTYPE
            else:
                raise ValueError(entry.kind)
            archive.addfile(info, data)
    raw = buffer.getvalue()
    if compression == "zst":
        zstd = shutil.which("zstd")
        if not zstd:
            raise Skipped("zstd is not installed")
        return subprocess.run([zstd, "-q", "-c"], input=raw, check=True,
                              capture_output=True).stdout
    return raw


def signed_sums(lines, after=""):
    """sha256sums.asc as kernel.org lays it out: clear-signed (with a fake
    signature). `after` is text past the signature, which nothing signed."""
    body = "".join(line + "\n" for line in lines)
    return ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + body +
            FAKE_SIGNATURE + after).encode()


# -- the fixture --------------------------------------------------------------------


class Result:
    def __init__(self, completed):
        self.code = completed.returncode
        self.out = completed.stdout
        self.err = completed.stderr

    def __str__(self):
        return f"exit {self.code}, stdout {self.out!r}, stderr {self.err!r}"


class Fixture:
    def __init__(self, cli, plugins, root):
        self.cli = cli
        self.plugins = plugins
        self.root = root
        self.cache = os.path.join(root, "cache")
        self.server = Server()
        self.releases = []
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("KTCACHE_")
               and key.lower() not in ("http_proxy", "https_proxy",
                                       "all_proxy", "no_proxy")}
        env.update({
            "HOME": root,
            "TMPDIR": root,
            "LC_ALL": "C",
            "no_proxy": "127.0.0.1",
            "KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR": "1",
            "KTCACHE_KERNEL_MIRROR": self.server.url("/mirror"),
            "KTCACHE_RELEASES_URL": self.server.url("/releases.json"),
            "KTCACHE_RC_URL": self.server.url("/rc"),
        })
        self.env = env
        self.counter = 0

    def close(self):
        self.server.close()

    # -- what the server offers ------------------------------------------

    def set_releases(self, rows):
        self.server.add("/releases.json", json.dumps({
            "latest_stable": {"version": "6.12.3"},
            "releases": rows,
        }).encode(), "application/json")

    def standard_releases(self):
        self.set_releases([
            {"moniker": "mainline", "version": "6.13-rc2",
             "iseol": False},
            {"moniker": "stable", "version": "6.12.3", "iseol": False},
            {"moniker": "longterm", "version": "6.6.60"},
            {"moniker": "linux-next", "version": "next-20241204"},
            # Dropped with a warning: no version; a version that is no
            # string; no moniker.
            {"moniker": "stable"},
            {"moniker": "stable", "version": 612},
            {"version": "6.11.11"},
        ])

    def release(self, version, top=None, sums=True, entries=None):
        """Puts linux-VERSION.tar.xz on the mirror; returns its bytes."""
        data = make_tar(entries or kernel_entries(top or f"linux-{version}",
                                                  version))
        name = f"linux-{version}.tar.xz"
        self.server.add(f"/mirror/v6.x/{name}", data)
        if sums:
            self.sums_lines = getattr(self, "sums_lines", [])
            self.sums_lines.append(f"{sha256(data)}  {name}")
            self.publish_sums()
        return data

    def publish_sums(self, after=""):
        self.server.add("/mirror/v6.x/sha256sums.asc",
                        signed_sums(["# generated for the test"] +
                                    self.sums_lines, after),
                        "text/plain")

    # -- running ktcache ------------------------------------------------------

    def run(self, *args, env=None, timeout=120):
        command = [self.cli, "--cache-dir", self.cache, "--plugin-dir",
                   self.plugins] + list(args)
        completed = subprocess.run(
            command, env=env or self.env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout)
        return Result(completed)

    def describe(self, spec, env=None, verbose=False):
        args = (["-v"] if verbose else []) + ["source", "describe", spec,
                                              "--json"]
        result = self.run(*args, env=env)
        check(result.code == EXIT_OK, f"describe {spec}: {result}")
        return json.loads(result.out), result

    def new_dir(self):
        self.counter += 1
        path = os.path.join(self.root, f"dest{self.counter}")
        os.mkdir(path)
        return path

    def fetch(self, spec, env=None, verbose=False):
        """Fetches into a fresh, existing empty directory: (Result, dir)."""
        dest = self.new_dir()
        args = (["-v"] if verbose else []) + ["source", "fetch", spec, dest]
        return self.run(*args, env=env), dest

    def fetch_ok(self, spec, env=None, verbose=False):
        result, dest = self.fetch(spec, env, verbose)
        check(result.code == EXIT_OK, f"fetch {spec}: {result}")
        tree = result.out.strip()
        check(os.path.dirname(tree) == dest,
              f"fetch {spec}: the tree {tree} is not directly in {dest}")
        return tree, result

    def fetch_fails(self, spec, code, *needles, env=None):
        """Fetches and expects failure with `code`, a one-line message
        holding every needle, and the directory left empty."""
        result, dest = self.fetch(spec, env)
        expect_failure(result, f"fetch {spec}", code, *needles)
        left = os.listdir(dest) if os.path.isdir(dest) else []
        check(left == [], f"fetch {spec}: {dest} is not empty: {left}")
        return result

    def write_file(self, name, data):
        path = os.path.join(self.root, name)
        with open(path, "wb") as out:
            out.write(data)
        return path


def expect_failure(result, what, code, *needles):
    check(result.code == code,
          f"{what}: expected exit {code}: {result}")
    # The CLI's message is its last line; warnings and progress come first.
    lines = result.err.strip().splitlines()
    check(lines and lines[-1].startswith("ktcache: source "),
          f"{what}: no error line: {result}")
    message = lines[-1]
    for needle in needles:
        check(needle in message,
              f"{what}: the error does not say {needle!r}: {message!r}")


def makefile_version(tree):
    values = {}
    with open(os.path.join(tree, "Makefile"), encoding="utf-8") as text:
        for line in text:
            name, sep, value = line.partition("=")
            if sep:
                values.setdefault(name.strip(), value.strip())
    return values


def check_kernel_tree(tree, version):
    """The tree extracted whole: the Makefile's version, the in-tree
    '..' symlink as a symlink with its target, the hard link, the big
    file, the executable bit."""
    base, _, rc = version.partition("-rc")
    numbers = base.split(".") + ["0"]
    values = makefile_version(tree)
    got = (values.get("VERSION"), values.get("PATCHLEVEL"),
           values.get("SUBLEVEL"), values.get("EXTRAVERSION"))
    want = (numbers[0], numbers[1], numbers[2], f"-rc{rc}" if rc else "")
    check(got == want, f"{tree}: Makefile version {got}, expected {want}")
    link = os.path.join(tree, IN_TREE_LINK)
    check(os.path.islink(link), f"{link} is not a symbolic link")
    check(os.readlink(link) == IN_TREE_TARGET,
          f"{link} -> {os.readlink(link)}, expected {IN_TREE_TARGET}")
    check(os.path.isfile(os.path.join(link, "board.dts")),
          f"{link} does not reach arch/arm/boot/dts")
    run_sh = os.stat(os.path.join(tree, "scripts/run.sh"))
    same_sh = os.stat(os.path.join(tree, "scripts/same.sh"))
    check(run_sh.st_ino == same_sh.st_ino,
          "scripts/same.sh is not a hard link of scripts/run.sh")
    check(run_sh.st_mode & 0o100, "scripts/run.sh lost its executable bit")
    check(os.path.getsize(os.path.join(tree, "big.bin")) == BIG_SIZE,
          "big.bin has the wrong size")
    check(int(os.stat(os.path.join(tree, "README")).st_mtime) == 1700000000,
          "README lost its mtime")


# -- cases: describe ---------------------------------------------------------------


def case_describe_exact(f):
    description, _ = f.describe("tarball:6.12.3")
    url = f.server.url("/mirror/v6.x/linux-6.12.3.tar.xz")
    check(description["identity"].get("version") == "6.12.3",
          f"identity {description['identity']}")
    check(description["identity"].get("url") == url,
          f"identity {description['identity']}")
    check(description["key_parts"] == ["6.12.3", "tarball"],
          f"key parts {description['key_parts']}")
    source = description["source"]
    check(source.get("type") == "tarball" and source.get("url") == url,
          f"source {source}")
    check(f.server.requests() == {},
          f"describing an exact version used the network: "
          f"{f.server.requests()}")
    # Only the version and where it is: the build hashes the identity.
    check(set(description["identity"]) == {"version", "url"},
          f"identity {description['identity']}")
    # #sha256= on a version is kept in the payload; the identity (and so
    # the key) stays the version's.
    digest = "ab" * 32
    with_sha, _ = f.describe("tarball:6.12.3#sha256=" + digest.upper())
    check(with_sha["identity"] == description["identity"],
          f"identity {with_sha['identity']}")
    check(with_sha["source"].get("sha256") == digest,
          f"source {with_sha['source']}")


def case_describe_series(f):
    f.standard_releases()
    description, result = f.describe("tarball:6.12", verbose=True)
    check(description["identity"].get("version") == "6.12.3",
          f"identity {description['identity']}")
    check(description["key_parts"] == ["6.12.3", "tarball"],
          f"key parts {description['key_parts']}")
    check("latest 6.12.x kernel: 6.12.3" in result.err,
          f"no progress line: {result.err!r}")
    check("dropped 3 row(s)" in result.err,
          f"no warning about the malformed rows: {result.err!r}")
    check(f.server.count("GET", "/releases.json") == 1,
          f"releases.json fetched {f.server.count('GET', '/releases.json')} "
          "times")
    description, _ = f.describe("tarball:6.6")
    check(description["identity"].get("version") == "6.6.60",
          f"identity {description['identity']}")
    # A major alone is a prefix too; linux-next and RCs never count.
    description, _ = f.describe("tarball:6")
    check(description["identity"].get("version") == "6.12.3",
          f"identity {description['identity']}")


def case_describe_eol(f):
    f.standard_releases()
    for patch in range(1, 38):
        f.server.add(f"/mirror/v6.x/linux-6.1.{patch}.tar.xz", b"x")
    description, result = f.describe("tarball:6.1", verbose=True)
    check(description["identity"].get("version") == "6.1.37",
          f"identity {description['identity']}")
    check("6.1.x not in releases.json (EOL series), probing" in result.err,
          f"no probing line: {result.err!r}")
    check("latest 6.1.x kernel (from cdn probe): 6.1.37" in result.err,
          f"no probe result line: {result.err!r}")
    heads = [patch for patch in range(1, 501)
             if f.server.count("HEAD",
                               f"/mirror/v6.x/linux-6.1.{patch}.tar.xz")]
    check(heads[:38] == list(range(1, 39)),
          f"HEAD requests for {heads}, expected 1..38 at least")
    # Windows of 16 then 32: nothing past the window holding 6.1.38.
    check(max(heads) <= 48, f"probed up to 6.1.{max(heads)}")
    gets = [key for key in f.server.requests() if key[0] == "GET"
            and key[1] != "/releases.json"]
    check(gets == [], f"probing downloaded {gets}")

    result = f.run("source", "describe", "tarball:5.99")
    expect_failure(result, "describe tarball:5.99", EXIT_NOT_FOUND,
                   "no tarball found for 5.99.x on 127.0.0.1")


def case_describe_rc(f):
    description, _ = f.describe("tarball:6.15-rc3")
    check(description["identity"].get("version") == "6.15-rc3",
          f"identity {description['identity']}")
    check(description["identity"].get("url") ==
          f.server.url("/rc/linux-6.15-rc3.tar.gz"),
          f"identity {description['identity']}")
    check(description["key_parts"] == ["6.15-rc3", "tarball"],
          f"key parts {description['key_parts']}")
    check(f.server.requests() == {}, f"requests {f.server.requests()}")


def case_describe_file(f):
    data = make_tar(kernel_entries("linux-6.1.5", "6.1.5"))
    path = f.write_file("linux-6.1.5.tar.xz", data)
    digest = sha256(data)
    description, _ = f.describe("tarball:" + path)
    identity = description["identity"]
    check(identity == {"digest": digest,
                       "digest_name": "linux-6.1.5.tar.xz"},
          f"identity {identity}")
    check(description["key_parts"] == ["linux-6.1.5", "tarball",
                                       digest[:12]],
          f"key parts {description['key_parts']}")
    source = description["source"]
    check(source.get("type") == "tarball" and source.get("file") == path
          and source.get("sha256") == digest, f"source {source}")
    # A relative path, from the working directory.
    result = subprocess.run(
        [f.cli, "--cache-dir", f.cache, "--plugin-dir", f.plugins, "source",
         "describe", "tarball:linux-6.1.5.tar.xz", "--json"], cwd=f.root,
        env=f.env, capture_output=True, text=True, timeout=60)
    check(result.returncode == 0, f"relative path: {result.stderr}")
    check(json.loads(result.stdout)["identity"]["digest"] == digest,
          "relative path: another digest")
    # The right #sha256= is accepted; a wrong one is refused at once.
    f.describe(f"tarball:{path}#sha256={digest}")
    wrong = "0" * 64
    result = f.run("source", "describe", f"tarball:{path}#sha256={wrong}")
    expect_failure(result, "describe with a wrong #sha256=", EXIT_INTEGRITY,
                   "SHA-256 mismatch", wrong, digest, path)


def case_describe_url_sums(f):
    data = make_tar(kernel_entries("linux-custom", "6.9.1"))
    f.server.add("/files/linux-custom.tar.xz", data)
    f.server.add("/files/sha256sums.asc", signed_sums(
        [f"{sha256(data)}  linux-custom.tar.xz"]), "text/plain")
    url = f.server.url("/files/linux-custom.tar.xz")
    description, result = f.describe("tarball:" + url)
    identity = description["identity"]
    check(identity == {"digest": sha256(data),
                       "digest_name": "linux-custom.tar.xz", "url": url},
          f"identity {identity}")
    check(description["key_parts"] == ["linux-custom", "tarball",
                                       sha256(data)[:12]],
          f"key parts {description['key_parts']}")
    check(description["source"].get("url") == url,
          f"source {description['source']}")
    check(f.server.count("GET", "/files/linux-custom.tar.xz") == 0,
          "describing a URL with sums beside it downloaded the tarball")
    check(f.server.count("GET", "/files/sha256sums.asc") == 1,
          "the sums were not fetched")
    check("is NOT checked" in result.err and "KTCACHE_KEYRING" in result.err,
          f"no warning that the signature is not checked: {result.err!r}")


def case_describe_url_sha(f):
    data = make_tar(kernel_entries("linux-custom", "6.9.1"))
    f.server.add("/files/linux-custom.tar.xz", data)
    url = f.server.url("/files/linux-custom.tar.xz")
    description, _ = f.describe(f"tarball:{url}#sha256={sha256(data)}")
    check(description["identity"].get("digest") == sha256(data),
          f"identity {description['identity']}")
    check(f.server.requests() == {},
          f"with #sha256= nothing is fetched: {f.server.requests()}")


def case_describe_url_download(f):
    data = make_tar(kernel_entries("linux-custom", "6.9.1"))
    f.server.add("/nosums/linux-custom.tar.xz", data)
    url = f.server.url("/nosums/linux-custom.tar.xz")
    description, _ = f.describe("tarball:" + url)
    identity = description["identity"]
    check(identity.get("digest") == sha256(data), f"identity {identity}")
    check(f.server.count("GET", "/nosums/linux-custom.tar.xz") == 1,
          "the tarball was not downloaded exactly once to hash it")


def case_malformed(f):
    os.mkdir(os.path.join(f.root, "adir"))
    cases = [
        ("tarball:", EXIT_USAGE, "nothing after 'tarball:'"),
        ("tarball:6.x", EXIT_USAGE, "'6.x' is not a kernel version"),
        ("tarball:6.12.3.4", EXIT_USAGE, "is not a kernel version"),
        ("tarball:6.15-rc", EXIT_USAGE, "is not a kernel version"),
        ("tarball:latest", EXIT_USAGE, "is not a kernel version"),
        ("tarball:6.12.3#sha256=abc", EXIT_USAGE,
         "'#sha256=abc' is not a SHA-256"),
        ("tarball:6.12.3#sha256=" + "g" * 64, EXIT_USAGE, "is not a SHA-256"),
        (f"tarball:{f.root}/missing/linux.tar.xz", EXIT_NOT_FOUND,
         "no such file"),
        (f"tarball:{f.root}/adir", EXIT_USAGE, "not a regular file"),
        ("tarball:http://127.0.0.1:1/", EXIT_USAGE, "names no file"),
        ("tarball:ftp://example.invalid/linux.tar.xz", EXIT_PLUGIN,
         "only http:// and https://"),
    ]
    for spec, code, needle in cases:
        result = f.run("source", "describe", spec)
        expect_failure(result, f"describe {spec}", code, needle, spec)
        check(len(result.err.strip().splitlines()) == 1,
              f"describe {spec}: more than one line: {result.err!r}")
    check(f.server.requests() == {}, f"requests {f.server.requests()}")


# -- cases: fetch ----------------------------------------------------------------------


def case_fetch_exact(f):
    f.release("6.12.3")
    # Past the signature: signed by no one, so never read (it would make
    # the download fail).
    f.publish_sums(after="0" * 64 + "  linux-6.12.3.tar.xz\n")
    tree, result = f.fetch_ok("tarball:6.12.3")
    check(tree.endswith("/linux-6.12.3"), f"tree {tree}")
    check_kernel_tree(tree, "6.12.3")
    check(f.server.count("GET", "/mirror/v6.x/linux-6.12.3.tar.xz") == 1,
          "the tarball was not downloaded exactly once")
    check(f.server.count("GET", "/mirror/v6.x/sha256sums.asc") == 1,
          "the sums were not fetched")
    check("ktcache: download" in result.err,
          f"no download progress on stderr: {result.err!r}")
    check("is NOT checked" in result.err,
          f"no warning that the signature is not checked: {result.err!r}")


def case_fetch_series(f):
    f.standard_releases()
    f.release("6.12.3")
    tree, _ = f.fetch_ok("tarball:6.12")
    check(tree.endswith("/linux-6.12.3"), f"tree {tree}")
    check_kernel_tree(tree, "6.12.3")
    check(f.server.count("GET", "/releases.json") == 1,
          "releases.json fetched more than once in one process")


def case_fetch_eol(f):
    f.standard_releases()
    for patch in range(1, 37):
        f.server.add(f"/mirror/v6.x/linux-6.1.{patch}.tar.xz", b"x")
    f.release("6.1.37")
    tree, _ = f.fetch_ok("tarball:6.1")
    check(tree.endswith("/linux-6.1.37"), f"tree {tree}")
    check_kernel_tree(tree, "6.1.37")


def case_fetch_rc(f):
    data = make_tar(kernel_entries("linux-6.15-rc3", "6.15-rc3"), "gz")
    f.server.add("/rc/linux-6.15-rc3.tar.gz", data)
    tree, result = f.fetch_ok("tarball:6.15-rc3")
    check(tree.endswith("/linux-6.15-rc3"), f"tree {tree}")
    check_kernel_tree(tree, "6.15-rc3")
    check("no checksum is available for RC tarballs" in result.err,
          f"no note that RC tarballs have no checksum: {result.err!r}")


def case_fetch_dot_zero(f):
    # A series whose latest is its .0 release: linux-6.14.tar.xz, whose
    # Makefile says SUBLEVEL = 0.
    f.set_releases([{"moniker": "mainline", "version": "6.14"}])
    f.release("6.14")
    tree, _ = f.fetch_ok("tarball:6.14")
    check(tree.endswith("/linux-6.14"), f"tree {tree}")
    check_kernel_tree(tree, "6.14")


def case_fetch_files(f):
    compressions = ["xz", "gz", "bz2", "", "zst"]
    for compression in compressions:
        suffix = ".tar" + ("." + compression if compression else "")
        data = make_tar(kernel_entries("linux-6.1.5", "6.1.5"), compression)
        path = f.write_file("linux-6.1.5" + suffix, data)
        tree, result = f.fetch_ok("tarball:" + path)
        check(tree.endswith("/linux-6.1.5"), f"{suffix}: tree {tree}")
        check_kernel_tree(tree, "6.1.5")
        check("ktcache: extract" in result.err,
              f"{suffix}: no progress on stderr: {result.err!r}")
    check(f.server.requests() == {}, f"requests {f.server.requests()}")


def case_fetch_debian_top(f):
    data = make_tar(kernel_entries("linux-source-6.1", "6.1.119"))
    path = f.write_file("linux-source-6.1.tar.xz", data)
    tree, _ = f.fetch_ok("tarball:" + path)
    check(tree.endswith("/linux-source-6.1"), f"tree {tree}")
    check_kernel_tree(tree, "6.1.119")
    description, _ = f.describe("tarball:" + path)
    check(description["key_parts"][:2] == ["linux-source-6.1", "tarball"],
          f"key parts {description['key_parts']}")


def case_fetch_url(f):
    data = make_tar(kernel_entries("linux-custom", "6.9.1"))
    f.server.add("/files/linux-custom.tar.xz", data)
    f.server.add("/files/sha256sums.asc", signed_sums(
        [f"{sha256(data)}  linux-custom.tar.xz"]), "text/plain")
    f.server.add("/nosums/linux-custom.tar.xz", data)
    url = f.server.url("/files/linux-custom.tar.xz")
    tree, _ = f.fetch_ok("tarball:" + url)
    check(tree.endswith("/linux-custom"), f"tree {tree}")
    check_kernel_tree(tree, "6.9.1")
    check(f.server.count("GET", "/files/linux-custom.tar.xz") == 1,
          "the tarball was downloaded more than once")
    tree, _ = f.fetch_ok(f"tarball:{url}#sha256={sha256(data)}")
    check_kernel_tree(tree, "6.9.1")
    # Without sums: hashed by one download in resolve, checked against it
    # in the second.
    tree, _ = f.fetch_ok("tarball:" + f.server.url(
        "/nosums/linux-custom.tar.xz"))
    check_kernel_tree(tree, "6.9.1")
    check(f.server.count("GET", "/nosums/linux-custom.tar.xz") == 2,
          "without sums: not one download to hash and one to extract")


def case_fetch_sums_parsing(f):
    # A dash-escaped line in the signed body is read unescaped.
    data = f.release("6.12.7", sums=False)
    f.server.add("/mirror/v6.x/sha256sums.asc", signed_sums(
        ["- " + sha256(data) + "  linux-6.12.7.tar.xz"]), "text/plain")
    tree, _ = f.fetch_ok("tarball:6.12.7")
    check_kernel_tree(tree, "6.12.7")
    # Not listed: fetched unverified, with a warning.
    f.server.add("/mirror/v6.x/sha256sums.asc", signed_sums(
        ["0" * 64 + "  linux-6.12.1.tar.xz"]), "text/plain")
    tree, result = f.fetch_ok("tarball:6.12.7")
    check("cannot be verified" in result.err,
          f"no warning about the missing sum: {result.err!r}")


def case_checksum_mismatch(f):
    f.release("6.12.4", sums=False)
    wrong = "1" * 64
    f.server.add("/mirror/v6.x/sha256sums.asc", signed_sums(
        [f"{wrong}  linux-6.12.4.tar.xz"]), "text/plain")
    data = f.server.routes["/mirror/v6.x/linux-6.12.4.tar.xz"].body
    f.fetch_fails("tarball:6.12.4", EXIT_INTEGRITY, "SHA-256 mismatch",
                  "expected " + wrong, "got " + sha256(data),
                  "linux-6.12.4.tar.xz", "sha256sums.asc")


def case_wrong_spec_sha(f):
    data = make_tar(kernel_entries("linux-custom", "6.9.1"))
    f.server.add("/files/linux-custom.tar.xz", data)
    url = f.server.url("/files/linux-custom.tar.xz")
    wrong = "2" * 64
    f.fetch_fails(f"tarball:{url}#sha256={wrong}", EXIT_INTEGRITY,
                  "SHA-256 mismatch", wrong, sha256(data), "#sha256=")
    # On a version too.
    f.release("6.12.3")
    f.fetch_fails(f"tarball:6.12.3#sha256={wrong}", EXIT_INTEGRITY,
                  "SHA-256 mismatch", wrong)


def case_makefile_mismatch(f):
    f.release("6.12.5", entries=kernel_entries("linux-6.12.5", "6.12.6"))
    f.fetch_fails("tarball:6.12.5", EXIT_INTEGRITY,
                  "Makefile says version 6.12.6, not 6.12.5")
    data = make_tar([Entry("notkernel/", "dir"),
                     Entry("notkernel/README", data=b"hi\n")])
    path = f.write_file("notkernel.tar.xz", data)
    f.fetch_fails("tarball:" + path, EXIT_USAGE, "not a kernel source tree")


def case_keyring(f):
    f.release("6.12.3")
    bogus = f.write_file("bogus.gpg", b"not a keyring")
    env = dict(f.env, KTCACHE_KEYRING=bogus)
    f.fetch_fails("tarball:6.12.3", EXIT_INTEGRITY,
                  "PGP signature does not verify", env=env)
    missing = dict(f.env, KTCACHE_KEYRING=os.path.join(f.root, "nokeyring"))
    f.fetch_fails("tarball:6.12.3", EXIT_NOT_FOUND, "KTCACHE_KEYRING=",
                  env=missing)
    # A real signature, when gpg can make one.
    gpg = shutil.which("gpg")
    if not gpg or not shutil.which("gpgv"):
        print("  (gpg or gpgv missing: no real signature checked)")
        return
    home = os.path.join(f.root, "gnupg")
    os.mkdir(home, 0o700)
    gpg_env = dict(f.env, GNUPGHOME=home)

    def run_gpg(*args, data=None):
        return subprocess.run([gpg, "--batch", "--quiet", "--pinentry-mode",
                               "loopback", "--passphrase", ""] + list(args),
                              input=data, env=gpg_env, capture_output=True,
                              check=True, timeout=120).stdout

    run_gpg("--quick-gen-key", "ktcache test <test@example.invalid>",
            "ed25519", "sign", "never")
    body = "".join(line + "\n" for line in f.sums_lines).encode()
    f.server.add("/mirror/v6.x/sha256sums.asc", run_gpg("--clearsign",
                                                          data=body),
                 "text/plain")
    keyring = f.write_file("keyring.gpg", run_gpg("--export"))
    tree, result = f.fetch_ok("tarball:6.12.3",
                              env=dict(f.env, KTCACHE_KEYRING=keyring),
                              verbose=True)
    check_kernel_tree(tree, "6.12.3")
    check("PGP signature verified" in result.err,
          f"no note of the verified signature: {result.err!r}")
    check("is NOT checked" not in result.err,
          "warned about an unchecked signature with a keyring")
    # A signed body that was changed afterwards no longer verifies.
    signed = f.server.routes["/mirror/v6.x/sha256sums.asc"].body
    f.server.add("/mirror/v6.x/sha256sums.asc",
                 signed.replace(b"linux-6.12.3", b"linux-6.12.9"),
                 "text/plain")
    f.release("6.12.9", sums=False)
    f.fetch_fails("tarball:6.12.9", EXIT_INTEGRITY,
                  "PGP signature does not verify",
                  env=dict(f.env, KTCACHE_KEYRING=keyring))


def case_cancel(f):
    data = make_tar(kernel_entries("linux-custom", "6.9.1"))
    route = f.server.add("/slow/linux-custom.tar.xz", data, delay=0.05)
    url = f.server.url("/slow/linux-custom.tar.xz")
    dest = f.new_dir()
    process = subprocess.Popen(
        [f.cli, "--cache-dir", f.cache, "--plugin-dir", f.plugins, "source",
         "fetch", f"tarball:{url}#sha256={sha256(data)}", dest],
        env=f.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        check(route.started.wait(30), "the slow download never started")
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    check(process.returncode == EXIT_CANCELLED,
          f"cancelled fetch exited {process.returncode}: {err!r}")
    check("cancelled" in err, f"no cancellation message: {err!r}")
    left = os.listdir(dest) if os.path.isdir(dest) else []
    check(left == [], f"a cancelled fetch left {left}")


# -- cases: network errors ------------------------------------------------------------


def case_not_found(f):
    f.standard_releases()
    f.release("6.12.3")
    f.fetch_fails("tarball:6.12.9", EXIT_NOT_FOUND,
                  "version 6.12.9 not found. latest 6.12.x: 6.12.3")
    result = f.fetch_fails("tarball:6.2.9", EXIT_NOT_FOUND,
                           "version 6.2.9 not found")
    check("latest" not in result.err.splitlines()[-1],
          f"a hint for a series releases.json does not list: {result.err!r}")
    f.fetch_fails("tarball:6.15-rc9", EXIT_NOT_FOUND,
                  "RC tarball not found: " +
                  f.server.url("/rc/linux-6.15-rc9.tar.gz"),
                  "RC releases are removed from git.kernel.org")


def case_html(f):
    f.server.add("/mirror/v6.x/linux-6.12.3.tar.xz",
                 b"<html><body>Oops</body></html>", "text/html; charset=utf-8")
    f.fetch_fails("tarball:6.12.3", EXIT_NETWORK,
                  "server returned HTML instead of tarball (URL may be "
                  "invalid)", "linux-6.12.3.tar.xz")


def case_http_errors(f):
    f.server.add("/files/broken.tar.xz", b"oops", "text/plain", status=500)
    url = f.server.url("/files/broken.tar.xz")
    f.fetch_fails(f"tarball:{url}#sha256={'3' * 64}", EXIT_NETWORK,
                  f"download {url}: HTTP 500")
    f.server.add("/files/gone.tar.xz", b"", "text/plain", status=404)
    url = f.server.url("/files/gone.tar.xz")
    f.fetch_fails(f"tarball:{url}#sha256={'3' * 64}", EXIT_NETWORK,
                  f"download {url}: HTTP 404")
    # Sums that fail otherwise than by being absent stop the resolve.
    f.server.add("/err/sha256sums.asc", b"", "text/plain", status=503)
    result = f.run("source", "describe",
                   "tarball:" + f.server.url("/err/linux.tar.xz"))
    expect_failure(result, "sums answering 503", EXIT_NETWORK, "HTTP 503")
    # releases.json: an error status, then not JSON, then no array.
    f.server.add("/releases.json", b"", "text/plain", status=500)
    result = f.run("source", "describe", "tarball:6.12")
    expect_failure(result, "releases.json answering 500", EXIT_NETWORK,
                   "releases " + f.server.url("/releases.json") + ": HTTP 500")
    f.server.add("/releases.json", b"{not json", "application/json")
    result = f.run("source", "describe", "tarball:6.12")
    expect_failure(result, "malformed releases.json", EXIT_NETWORK,
                   "not valid JSON")
    f.server.add("/releases.json", b'{"latest": 1}', "application/json")
    result = f.run("source", "describe", "tarball:6.12")
    expect_failure(result, "releases.json without releases", EXIT_NETWORK,
                   'no "releases" array')


def case_connection_refused(f):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on `port` now.
    dead = f"http://127.0.0.1:{port}"
    env = dict(f.env, KTCACHE_KERNEL_MIRROR=dead + "/mirror",
               KTCACHE_RELEASES_URL=dead + "/releases.json")
    f.fetch_fails("tarball:6.12.3", EXIT_NETWORK,
                  dead + "/mirror/v6.x/sha256sums.asc", env=env)
    result = f.run("source", "describe", "tarball:6.12", env=env)
    expect_failure(result, "releases.json refused", EXIT_NETWORK,
                   "releases " + dead + "/releases.json")
    result = f.run("source", "describe",
                   f"tarball:{dead}/files/linux.tar.xz", env=env)
    expect_failure(result, "URL refused", EXIT_NETWORK, dead)
    check("onnect" in result.err, f"no connect error: {result.err!r}")


# -- cases: hostile tarballs ---------------------------------------------------------


def base_entries(top="linux-6.1.5"):
    return [Entry(top + "/", "dir"),
            Entry(top + "/Makefile", data=makefile_for("6.1.5")),
            Entry(top + "/sub/", "dir"),
            Entry(top + "/sub/file.c", data=b"int x;\n")]


def hostile(f, name, extra, *needles, top="linux-6.1.5"):
    """A tarball of a small tree plus `extra` entries must fail to fetch
    with a message naming the entry and the trick, leaving nothing."""
    entries = base_entries(top) + extra
    path = f.write_file(name + ".tar.xz", make_tar(entries))
    f.fetch_fails("tarball:" + path, EXIT_USAGE, "refused entry", *needles)


def case_hostile_absolute(f):
    target = os.path.join(f.root, "escaped-absolute")
    hostile(f, "absolute", [Entry(target, data=b"owned\n")],
            target, "absolute path")
    check(not os.path.exists(target), f"{target} was written")


def case_hostile_traversal(f):
    target = os.path.join(f.root, "escaped-traversal")
    name = "linux-6.1.5/../../" + os.path.basename(target)
    hostile(f, "traversal", [Entry(name, data=b"owned\n")], name,
            "'..' component (path traversal)")
    check(not os.path.exists(target), f"{target} was written")


def case_hostile_symlink_relative(f):
    hostile(f, "symlink-relative",
            [Entry("linux-6.1.5/sub/out", "symlink", target="../../..")],
            "linux-6.1.5/sub/out", "escaping the tree")
    # Just one level too far: the top directory's parent.
    hostile(f, "symlink-relative-one",
            [Entry("linux-6.1.5/up", "symlink", target="../x")],
            "linux-6.1.5/up", "escaping the tree")
    # Down, then further up than it went: lexically inside, but what the
    # '..' climbs from depends on links along the way.
    hostile(f, "symlink-climb-after-name",
            [Entry("linux-6.1.5/dot", "symlink", target="."),
             Entry("linux-6.1.5/trick", "symlink",
                   target="dot/dot/../x")],
            "linux-6.1.5/trick", "climbs back out of a name")


def case_hostile_symlink_absolute(f):
    hostile(f, "symlink-absolute",
            [Entry("linux-6.1.5/etc", "symlink", target="/etc")],
            "linux-6.1.5/etc", "absolute path '/etc'")


def case_hostile_through_symlink(f):
    outside = os.path.join(f.root, "outside")
    os.mkdir(outside)
    # An in-tree link to a directory, then a file written through it.
    hostile(f, "through-symlink",
            [Entry("linux-6.1.5/lnk", "symlink", target="sub"),
             Entry("linux-6.1.5/lnk/evil.c", data=b"owned\n")],
            "linux-6.1.5/lnk/evil.c", "'linux-6.1.5/lnk' is a symbolic link")
    # The same with a deeper path, made of missing directories.
    hostile(f, "through-symlink-deep",
            [Entry("linux-6.1.5/lnk", "symlink", target="sub"),
             Entry("linux-6.1.5/lnk/a/b/evil.c", data=b"owned\n")],
            "linux-6.1.5/lnk/a/b/evil.c", "is a symbolic link")
    check(os.listdir(outside) == [], "something was written outside")


def case_hostile_hardlink(f):
    target = os.path.join(f.root, "victim")
    with open(target, "w", encoding="utf-8") as out:
        out.write("victim\n")
    hostile(f, "hardlink-absolute",
            [Entry("linux-6.1.5/h", "hardlink", target=target)],
            "linux-6.1.5/h", "absolute path")
    hostile(f, "hardlink-traversal",
            [Entry("linux-6.1.5/h", "hardlink",
                   target="linux-6.1.5/../victim")],
            "linux-6.1.5/h", "'..' component")
    hostile(f, "hardlink-other-top",
            [Entry("linux-6.1.5/h", "hardlink", target="victim")],
            "linux-6.1.5/h", "outside the tree")
    hostile(f, "hardlink-unknown",
            [Entry("linux-6.1.5/h", "hardlink",
                   target="linux-6.1.5/not-there")],
            "linux-6.1.5/h", "not a regular file extracted before it")
    hostile(f, "hardlink-to-symlink",
            [Entry("linux-6.1.5/sub/l", "symlink", target="file.c"),
             Entry("linux-6.1.5/h", "hardlink", target="linux-6.1.5/sub/l")],
            "linux-6.1.5/h", "not a regular file")
    check(os.stat(target).st_nlink == 1, "the victim got a hard link")


def case_hostile_devices(f):
    hostile(f, "chr", [Entry("linux-6.1.5/null", "chr")],
            "linux-6.1.5/null", "a character device")
    hostile(f, "blk", [Entry("linux-6.1.5/disk", "blk")],
            "linux-6.1.5/disk", "a block device")
    hostile(f, "fifo", [Entry("linux-6.1.5/pipe", "fifo")],
            "linux-6.1.5/pipe", "a FIFO")


def case_hostile_two_tops(f):
    hostile(f, "two-tops", [Entry("other/", "dir"),
                            Entry("other/file", data=b"x")],
            "other/", "second top-level entry 'other'")
    hostile(f, "top-file", [Entry("README", data=b"x")], "README",
            "top-level entry that is not a directory")


def case_setuid_masked(f):
    entries = base_entries() + [
        Entry("linux-6.1.5/suid", data=b"#!/bin/sh\n", mode=0o4755),
        Entry("linux-6.1.5/sgid/", "dir", mode=0o2775),
        Entry("linux-6.1.5/sticky/", "dir", mode=0o1777),
        Entry("linux-6.1.5/world", data=b"x", mode=0o666),
    ]
    path = f.write_file("setuid.tar.xz", make_tar(entries))
    tree, result = f.fetch_ok("tarball:" + path)
    mode = os.stat(os.path.join(tree, "suid")).st_mode
    check(stat.S_IMODE(mode) & 0o7000 == 0, f"suid kept: {oct(mode)}")
    check(stat.S_IMODE(mode) & 0o755 == 0o755, f"suid lost rwx: {oct(mode)}")
    for name in ("sgid", "sticky"):
        mode = os.stat(os.path.join(tree, name)).st_mode
        check(stat.S_IMODE(mode) & 0o7000 == 0, f"{name} kept: {oct(mode)}")
    # The umask (022 here) applies on top.
    mode = stat.S_IMODE(os.stat(os.path.join(tree, "world")).st_mode)
    check(mode == 0o644, f"world-writable file is {oct(mode)}")
    check("dropped the setuid, setgid or sticky bits of 3 entries"
          in result.err, f"no warning about the masked bits: {result.err!r}")


def case_damaged(f):
    data = make_tar(kernel_entries("linux-6.1.5", "6.1.5"))
    path = f.write_file("truncated.tar.xz", data[:len(data) // 2])
    f.fetch_fails("tarball:" + path, EXIT_USAGE, path)
    path = f.write_file("garbage.tar.xz", os.urandom(100000))
    f.fetch_fails("tarball:" + path, EXIT_USAGE, "not a tar archive")
    path = f.write_file("empty.tar.xz", b"")
    f.fetch_fails("tarball:" + path, EXIT_USAGE, "empty input")
    # A name listed twice: the later one wins, as with tar.
    entries = base_entries() + [Entry("linux-6.1.5/sub/file.c",
                                      data=b"int y;\n")]
    path = f.write_file("twice.tar.xz", make_tar(entries))
    tree, _ = f.fetch_ok("tarball:" + path)
    with open(os.path.join(tree, "sub/file.c"), encoding="utf-8") as text:
        check(text.read() == "int y;\n", "the later entry did not win")


CASES = {name[len("case_"):]: function
         for name, function in sorted(globals().items())
         if name.startswith("case_")}


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cli, plugins = (os.path.abspath(path) for path in argv[1:3])
    names = argv[3:] or list(CASES)
    unknown = [name for name in names if name not in CASES]
    if unknown:
        print(f"unknown cases: {' '.join(unknown)} (known: "
              f"{' '.join(CASES)})", file=sys.stderr)
        return 2
    failed = []
    skipped = []
    os.umask(0o022)
    for name in names:
        with tempfile.TemporaryDirectory(prefix="ktc-source-tarball-") as root:
            fixture = Fixture(cli, plugins, root)
            started = time.monotonic()
            try:
                CASES[name](fixture)
                print(f"ok   {name} ({time.monotonic() - started:.1f} s)")
            except Skipped as reason:
                skipped.append(name)
                print(f"SKIP {name}: {reason}")
            except (CheckFailed, subprocess.TimeoutExpired,
                    subprocess.CalledProcessError, OSError, KeyError,
                    ValueError) as error:
                failed.append(name)
                print(f"FAIL {name}: {type(error).__name__}: {error}")
            finally:
                fixture.close()
    if failed:
        print(f"{len(failed)} of {len(names)} failed: {' '.join(failed)}")
        return 1
    if len(skipped) == len(names):
        return EXIT_SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
