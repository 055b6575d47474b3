#!/usr/bin/env python3
"""releases.json as ktcache keeps it, ranges, EOL tags and the offline
switch, through the CLI.

Usage: test_releases.py KTCACHE_CLI PLUGIN_DIR [CASE...]

Each case starts an HTTP server on 127.0.0.1 that plays kernel.org (the
one of tests/source_tarball/check_source_tarball.py: it counts requests
per method and path) and points KTCACHE_RELEASES_URL and
KTCACHE_KERNEL_MIRROR at it. The environment is sanitized as the tarball
plugin's tests do (no KTCACHE_* and no proxy variables of the caller's).
What is checked:

  - `list --range` expands from the served releases.json: inclusive ends,
    an RC below its release, ends that are not releases, sorted output,
    linux-next and mainline rows ignored; malformed ranges exit 2, an
    empty one exits 1;
  - the copy <root>/.releases.json is written once and reused within its
    time to live (the server's request count), fetched again with
    KTCACHE_RELEASES_TTL=0 or from another URL, used stale (with a
    warning) when the server fails;
  - `list --eol` tags exactly the entries of series the copy lacks, never
    all of them when there is no copy, and `--refresh` fetches;
  - offline (KTCACHE_OFFLINE=1 or --offline): ranges from the copy with no
    request, exit 9 with nothing on disk; a tarball build that is cached is
    a hit with no request, a miss fails with exit 9 and adds nothing; a git
    source of a remote URL is refused with the offline message, while a
    full commit of it hits;
  - a series build goes through the shared copy; a range build goes on
    past a version whose tarball is missing and names it.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "source_tarball"))
import check_source_tarball as kernel_org  # noqa: E402
import fake_kernel  # noqa: E402
from test_build_pipeline import Failure, expect, git  # noqa: E402

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_NETWORK = 9

CLI = None
PLUGINS = None

RELEASES = [
    {"moniker": "mainline", "version": "6.14-rc3"},
    {"moniker": "stable", "version": "6.13.4"},
    {"moniker": "stable", "version": "6.12.9"},
    {"moniker": "longterm", "version": "6.12.9"},
    {"moniker": "longterm", "version": "6.6.70"},
    {"moniker": "longterm", "version": "6.1.120"},
    {"moniker": "longterm", "version": "5.15.170"},
    # Parsable on purpose: linux-next must be skipped by its moniker.
    {"moniker": "linux-next", "version": "6.9.5"},
    {"moniker": "linux-next", "version": "next-20250221"},
]


class Result:
    def __init__(self, completed):
        self.code = completed.returncode
        self.out = completed.stdout
        self.err = completed.stderr

    def __str__(self):
        return (f"exit {self.code}\nstdout: {self.out}\nstderr: "
                f"{self.err}")


class Fixture:
    def __init__(self, root):
        self.root = root
        self.cache = os.path.join(root, "cache")
        self.server = kernel_org.Server()
        self.build_log = os.path.join(root, "builds.log")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("KTCACHE_")
               and key.lower() not in ("http_proxy", "https_proxy",
                                       "all_proxy", "no_proxy")}
        env.update({
            "HOME": root,
            "TMPDIR": root,
            "LC_ALL": "C",
            "no_proxy": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "FAKE_KERNEL_LOG": self.build_log,
            "KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR": "1",
            "KTCACHE_KERNEL_MIRROR": self.server.url("/mirror"),
            "KTCACHE_RELEASES_URL": self.server.url("/releases.json"),
            "KTCACHE_RC_URL": self.server.url("/rc"),
        })
        env.pop("CROSS_COMPILE", None)
        self.env = env
        self.sums_lines = []

    def close(self):
        self.server.close()

    @property
    def copy(self):
        return os.path.join(self.cache, ".releases.json")

    def set_releases(self, rows=None):
        self.server.add("/releases.json", json.dumps({
            "latest_stable": {"version": "6.13.4"},
            "releases": RELEASES if rows is None else rows,
        }).encode(), "application/json")

    def fetches(self):
        return self.server.count("GET", "/releases.json")

    def requests(self):
        return sum(self.server.requests().values())

    def run(self, *args, env=None, expect_status=None, timeout=300):
        command = [CLI, "--cache-dir", self.cache, "--plugin-dir", PLUGINS,
                   *args]
        full_env = dict(self.env)
        full_env.update(env or {})
        result = Result(subprocess.run(
            command, env=full_env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout))
        if expect_status is not None:
            expect(result.code == expect_status,
                   f"{' '.join(args)}: expected exit {expect_status}, "
                   f"got {result}")
        return result

    def range(self, text, *args, **kwargs):
        result = self.run("list", "--range", text, *args,
                          expect_status=EXIT_OK, **kwargs)
        return result.out.split(), result

    def entries(self):
        listed = json.loads(self.run("list", "--json",
                                     expect_status=EXIT_OK).out)
        return sorted(entry["key"] for entry in listed)

    def serve_kernel(self, version):
        """linux-VERSION.tar.xz of a fake tree on the mirror, in the signed
        sums."""
        tree = fake_kernel.write_tree(
            os.path.join(self.root, "src-" + version), version=version)
        out = fake_kernel.make_tarball(
            tree, os.path.join(self.root, f"linux-{version}.tar.xz"))
        with open(out, "rb") as data:
            body = data.read()
        name = f"linux-{version}.tar.xz"
        self.server.add(f"/mirror/v6.x/{name}", body)
        self.sums_lines.append(f"{kernel_org.sha256(body)}  {name}")
        self.server.add("/mirror/v6.x/sha256sums.asc",
                        kernel_org.signed_sums(self.sums_lines),
                        "text/plain")

    def builds(self):
        return fake_kernel.count_builds(self.build_log)

    def build(self, spec, *args, **kwargs):
        return self.run("build", spec, "-j", "2", *args, **kwargs)

    def build_json(self, spec, *args, **kwargs):
        result = self.build(spec, "--json", *args, expect_status=EXIT_OK,
                            **kwargs)
        return json.loads(result.out.strip().splitlines()[-1]), result


def closed_port():
    """A port of 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------
# Ranges


def case_range_expansion(f):
    f.set_releases()
    versions, result = f.range("6.1..6.14")
    expect(versions == ["6.1.120", "6.6.70", "6.12.9", "6.13.4"],
           f"6.1..6.14: {versions}")
    expect("expanding kernel range 6.1..6.14" in result.err and
           "range expanded to 4 kernel(s): 6.1.120, 6.6.70, 6.12.9, 6.13.4"
           in result.err, result.err)
    # Both ends are included when they are releases.
    versions, _ = f.range("6.6.70..6.12.9")
    expect(versions == ["6.6.70", "6.12.9"], f"inclusive: {versions}")
    # An RC is below its release: as an end it excludes it, as a start it
    # includes it.
    versions, _ = f.range("6.6..6.13.4-rc1")
    expect(versions == ["6.6.70", "6.12.9"], f"rc end: {versions}")
    versions, _ = f.range("6.13.4-rc1..6.14")
    expect(versions == ["6.13.4"], f"rc start: {versions}")
    # Ends that are not releases; linux-next's 6.9.5 is not one either.
    versions, _ = f.range("6.2..6.11")
    expect(versions == ["6.6.70"], f"6.2..6.11: {versions}")
    versions, _ = f.range("5.0..5.99")
    expect(versions == ["5.15.170"], f"5.0..5.99: {versions}")
    result = f.run("list", "--range", "6.6..6.12.9", "--json",
                   expect_status=EXIT_OK)
    document = json.loads(result.out)
    expect(document == {"range": "6.6..6.12.9", "start": "6.6",
                        "end": "6.12.9", "versions": ["6.6.70", "6.12.9"]},
           f"--json: {document}")
    # list --range reads no entry: no "cache:" line.
    expect(not any(line.startswith("cache:")
                   for line in result.err.splitlines()), result.err)


def case_range_errors(f):
    f.set_releases()
    inverted = f.run("list", "--range", "6.14..6.12",
                     expect_status=EXIT_USAGE)
    expect("the start 6.14 is after the end 6.12" in inverted.err,
           inverted.err)
    open_end = f.run("list", "--range", "6.12..", expect_status=EXIT_USAGE)
    expect("6.12.." in open_end.err and "end" in open_end.err, open_end.err)
    not_range = f.run("list", "--range", "6.12", expect_status=EXIT_USAGE)
    expect("'6.12' is not a range (expected START..END)" in not_range.err,
           not_range.err)
    expect(f.fetches() == 0, "a malformed range fetched releases.json")
    empty = f.run("list", "--range", "6.7..6.11", expect_status=EXIT_NOT_FOUND)
    expect("range 6.7..6.11: no stable or longterm release in releases.json "
           "falls in it" in empty.err, empty.err)
    refresh = f.run("list", "--refresh", expect_status=EXIT_USAGE)
    expect("--refresh" in refresh.err, refresh.err)


# --------------------------------------------------------------------------
# The copy on disk


def case_copy_reused_within_ttl(f):
    f.set_releases()
    expect(not os.path.exists(f.copy), "a copy before anything ran")
    f.range("6.1..6.14")
    expect(f.fetches() == 1, f"{f.fetches()} fetches")
    with open(f.copy, encoding="utf-8") as text:
        copy = json.load(text)
    expect(copy["url"] == f.server.url("/releases.json") and
           abs(copy["fetched_at"] - time.time()) < 120 and
           {"moniker": "stable", "version": "6.13.4"} in copy["releases"],
           f"copy {copy}")
    mode = os.stat(f.copy).st_mode & 0o777
    expect(mode == 0o644, f"mode {oct(mode)} (umask 022)")
    left = [name for name in os.listdir(f.cache) if name != ".releases.json"]
    expect(not any("releases" in name for name in left), f"left {left}")
    # Within the time to live: the copy, whatever the server says now.
    f.set_releases([{"moniker": "stable", "version": "6.13.5"}])
    versions, _ = f.range("6.13..6.14")
    expect(versions == ["6.13.4"] and f.fetches() == 1,
           f"reuse: {versions}, {f.fetches()} fetches")
    # A bad TTL is the default, with a warning.
    versions, result = f.range("6.13..6.14",
                               env={"KTCACHE_RELEASES_TTL": "soon"})
    expect(versions == ["6.13.4"] and f.fetches() == 1,
           f"bad TTL: {versions}, {f.fetches()} fetches")
    expect("KTCACHE_RELEASES_TTL='soon'" in result.err, result.err)
    # TTL 0: always fetched again, and the copy replaced.
    versions, _ = f.range("6.13..6.14", env={"KTCACHE_RELEASES_TTL": "0"})
    expect(versions == ["6.13.5"] and f.fetches() == 2,
           f"TTL 0: {versions}, {f.fetches()} fetches")
    versions, _ = f.range("6.13..6.14")
    expect(versions == ["6.13.5"] and f.fetches() == 2,
           f"after TTL 0: {versions}, {f.fetches()} fetches")
    # Another URL: the copy is stale.
    f.server.add("/other.json", json.dumps({"releases": [
        {"moniker": "stable", "version": "6.13.6"}]}).encode(),
        "application/json")
    other = {"KTCACHE_RELEASES_URL": f.server.url("/other.json")}
    versions, _ = f.range("6.13..6.14", env=other)
    expect(versions == ["6.13.6"] and
           f.server.count("GET", "/other.json") == 1,
           f"other URL: {versions}")
    # --refresh fetches within the time to live.
    f.range("6.13..6.14", "--refresh")
    expect(f.fetches() == 3, f"--refresh: {f.fetches()} fetches")


def case_stale_copy_when_the_server_fails(f):
    f.set_releases()
    f.range("6.1..6.14")
    f.server.add("/releases.json", b"down\n", "text/plain", status=503)
    versions, result = f.range("6.1..6.14",
                               env={"KTCACHE_RELEASES_TTL": "0"})
    expect(versions == ["6.1.120", "6.6.70", "6.12.9", "6.13.4"],
           f"stale: {versions}")
    expect(f.fetches() == 2, f"{f.fetches()} fetches")
    expect("warn" in result.err and "fetch failed" in result.err and
           ".releases.json" in result.err, result.err)
    # With nothing on disk, the failure is the fetch's (exit 9).
    os.unlink(f.copy)
    failed = f.run("list", "--range", "6.1..6.14", expect_status=EXIT_NETWORK)
    expect("503" in failed.err, failed.err)


# --------------------------------------------------------------------------
# EOL


def store(f, key, version=None):
    image = os.path.join(f.root, "bzImage")
    with open(image, "wb") as out:
        out.write(b"image")
    args = ["store", key, "--image", image]
    if version:
        args += ["--version", version]
    f.run(*args, expect_status=EXIT_OK)


def eol_marks(f, *args, **kwargs):
    result = f.run("list", "--eol", "--json", *args, expect_status=EXIT_OK,
                   **kwargs)
    return {entry["key"]: entry["eol"] for entry in json.loads(result.out)}, \
        result


def case_list_eol(f):
    f.set_releases()
    store(f, "active-6-12", "6.12.3")
    store(f, "active-rc", "6.14-rc1")
    store(f, "eol-5-4", "5.4.1")
    store(f, "eol-6-2", "6.2.16")
    store(f, "no-version")
    # No copy: nothing is EOL, stderr says why, and nothing is fetched.
    marks, result = eol_marks(f)
    expect(set(marks.values()) == {None}, f"no copy: {marks}")
    expect("EOL status unknown: releases.json is not cached (run `ktcache "
           "list --eol --refresh`)" in result.err, result.err)
    table = f.run("list", "--eol", expect_status=EXIT_OK)
    expect("(EOL)" not in table.out and "EOL status unknown" in table.err,
           table.out + table.err)
    expect(f.fetches() == 0, f"list --eol fetched ({f.fetches()})")
    # --refresh fetches, and tags exactly the series releases.json lacks.
    marks, _ = eol_marks(f, "--refresh")
    expect(f.fetches() == 1, f"--refresh: {f.fetches()} fetches")
    expect(marks == {"active-6-12": False, "active-rc": False,
                     "eol-5-4": True, "eol-6-2": True, "no-version": None},
           f"marks {marks}")
    # From the copy, with no fetch.
    table = f.run("list", "--eol", expect_status=EXIT_OK)
    expect(f.fetches() == 1, f"list --eol fetched ({f.fetches()})")
    tagged = sorted(line.split()[0] for line in table.out.splitlines()
                    if line.endswith("(EOL)"))
    expect(tagged == ["eol-5-4", "eol-6-2"], f"tagged {tagged}\n{table.out}")
    expect("EOL: 2 entries" in table.err, table.err)
    # Without --eol nothing changes.
    plain = f.run("list", expect_status=EXIT_OK)
    expect("(EOL)" not in plain.out, plain.out)
    # A stale copy is used (no fetch: list never waits on the network),
    # with a note of its age.
    marks, result = eol_marks(f, env={"KTCACHE_RELEASES_TTL": "0"})
    expect(marks["eol-5-4"] is True and f.fetches() == 1,
           f"stale: {marks}, {f.fetches()} fetches")
    expect("ago" in result.err and "--refresh" in result.err, result.err)
    # A copy that lists no series marks nothing.
    f.set_releases([])
    marks, result = eol_marks(f, "--refresh")
    expect(set(marks.values()) == {None}, f"empty list: {marks}")
    expect("EOL status unknown" in result.err, result.err)


# --------------------------------------------------------------------------
# Offline


def case_offline_ranges(f):
    f.set_releases()
    for switch in ({"env": {"KTCACHE_OFFLINE": "1"}},
                   {"args": ["--offline"]}):
        failed = f.run(*switch.get("args", []), "list", "--range",
                       "6.1..6.14", env=switch.get("env"),
                       expect_status=EXIT_NETWORK)
        expect("offline" in failed.err, failed.err)
    expect(f.requests() == 0, f"offline requests {f.server.requests()}")
    # KTCACHE_OFFLINE is exactly "1".
    f.range("6.1..6.14", env={"KTCACHE_OFFLINE": "yes"})
    expect(f.fetches() == 1, f"{f.fetches()} fetches")
    # Offline: the copy of any age, no request.
    versions, _ = f.range("6.1..6.14", env={"KTCACHE_OFFLINE": "1",
                                            "KTCACHE_RELEASES_TTL": "0"})
    expect(versions == ["6.1.120", "6.6.70", "6.12.9", "6.13.4"] and
           f.fetches() == 1, f"offline: {versions}, {f.fetches()} fetches")
    versions, _ = f.range("6.1..6.14", "--refresh", env={
        "KTCACHE_OFFLINE": "1"})
    expect(f.fetches() == 1, f"offline --refresh fetched ({f.fetches()})")


def case_offline_tarball_build(f):
    f.set_releases([{"moniker": "longterm", "version": "6.1.2"}])
    f.serve_kernel("6.1.2")
    built, _ = f.build_json("6.1.2")
    expect(built["outcome"] == "built", f"online: {built}")
    before = f.requests()
    entries = f.entries()
    offline = {"KTCACHE_OFFLINE": "1"}
    hit, _ = f.build_json("6.1.2", env=offline)
    expect(hit["outcome"] == "hit" and hit["key"] == built["key"],
           f"offline hit: {hit}")
    hit, _ = f.build_json("tarball:6.1.2", env=offline)
    expect(hit["outcome"] == "hit", f"offline hit: {hit}")
    expect(f.requests() == before,
           f"an offline hit made requests: {f.server.requests()}")
    # A miss needs the download: refused, nothing added, nothing asked.
    f.serve_kernel("6.1.3")
    before = f.requests()
    missed = f.build("6.1.3", env=offline, expect_status=EXIT_NETWORK)
    expect("ktcache is offline" in missed.err, missed.err)
    expect(f.requests() == before, f"requests {f.server.requests()}")
    expect(f.entries() == entries, f"entries {f.entries()}")
    expect(f.builds() == 1, f"{f.builds()} builds")
    # No failure is recorded for waiters, no log kept: nothing was built.
    build_area = os.path.join(f.cache, ".build")
    left = [name for name in os.listdir(build_area) if "6.1.3" in name] + \
        [name for name in os.listdir(os.path.join(build_area, "logs"))
         if "6.1.3" in name]
    expect(left == [], f"an offline miss left {left}")
    missed = f.build("6.1.3", "--json", env=offline,
                     expect_status=EXIT_NETWORK)
    expect("ktcache is offline" in missed.err, missed.err)


def case_offline_git(f):
    repo = fake_kernel.write_tree(os.path.join(f.root, "repo"), git=True)
    commit = git("rev-parse", "HEAD", cwd=repo).strip()
    # A local repository works offline (file:// and a branch: ls-remote of
    # a local repository).
    offline = {"KTCACHE_OFFLINE": "1"}
    built, _ = f.build_json(f"git:file://{repo}@{commit}", env=offline)
    expect(built["outcome"] == "built", f"file:// offline: {built}")
    by_branch, _ = f.build_json(f"git:file://{repo}@master", env=offline)
    expect(by_branch["metadata"]["source"]["git_commit"] == commit,
           f"{by_branch}")
    # A remote URL whose server is down: a full commit needs no ls-remote,
    # so the same commit is a hit.
    remote = f"http://127.0.0.1:{closed_port()}/linux.git"
    hit, _ = f.build_json(f"git:{remote}@{commit}", env=offline)
    expect(hit["outcome"] == "hit" and hit["key"] == built["key"],
           f"remote by commit: {hit}")
    # A branch of it needs ls-remote: refused as offline, not a
    # connection error.
    refused = f.build(f"git:{remote}@master", env=offline,
                      expect_status=EXIT_NETWORK)
    expect(f"git {remote}: not fetched, ktcache is offline "
           "(KTCACHE_OFFLINE=1)" in refused.err, refused.err)
    expect("ls-remote exited" not in refused.err, refused.err)
    # Another commit of it is a miss whose fetch is refused.
    other = "0123456789abcdef0123456789abcdef01234567"
    refused = f.build(f"git:{remote}@{other}", env=offline,
                      expect_status=EXIT_NETWORK)
    expect("not fetched, ktcache is offline" in refused.err, refused.err)
    # The same through --offline and `source describe`.
    refused = f.run("--offline", "source", "describe",
                    f"git:{remote}@master", expect_status=EXIT_NETWORK)
    expect("ktcache is offline" in refused.err, refused.err)
    # Online, the same spec is a connection failure (exit 9), not the
    # offline message.
    online = f.build(f"git:{remote}@master", expect_status=EXIT_NETWORK)
    expect("offline" not in online.err, online.err)


# --------------------------------------------------------------------------
# Builds of a series and of a range


def case_series_through_the_copy(f):
    f.set_releases([{"moniker": "stable", "version": "6.2.1"},
                    {"moniker": "longterm", "version": "6.1.2"}])
    f.serve_kernel("6.1.2")
    f.range("6.1..6.3")
    expect(f.fetches() == 1, f"{f.fetches()} fetches")
    # The server now says 6.1.1: only the copy says 6.1.2.
    f.set_releases([{"moniker": "longterm", "version": "6.1.1"}])
    built, result = f.build_json("6.1", "-v")
    expect(built["outcome"] == "built" and
           built["metadata"]["version"] == "6.1.2" and
           built["build"]["spec"] == "tarball:6.1.2", f"series: {built}")
    expect("the newest release in releases.json is 6.1.2; building "
           "tarball:6.1.2" in result.err, result.err)
    expect(f.fetches() == 1, f"the series build fetched ({f.fetches()})")
    # A series the copy lacks goes to the plugin as it is (which probes
    # the mirror for it).
    missing = f.build("6.0", "-v")
    expect(missing.code != EXIT_OK, f"6.0: {missing}")
    expect("Series 6.0 is not in releases.json" in missing.err and
           "tarball:6.0 resolves it" in missing.err, missing.err)
    expect(f.server.count("HEAD", "/mirror/v6.x/linux-6.0.1.tar.xz") >= 1,
           f"no probe: {f.server.requests()}")


def case_range_build(f):
    f.set_releases([{"moniker": "stable", "version": "6.3.1"},
                    {"moniker": "stable", "version": "6.2.1"},
                    {"moniker": "longterm", "version": "6.1.2"},
                    {"moniker": "longterm", "version": "5.15.1"}])
    f.serve_kernel("6.1.2")
    f.serve_kernel("6.3.1")
    result = f.build("6.1..6.3.1", "--kconfig-set", "CONFIG_HZ=250")
    expect(result.code == EXIT_NOT_FOUND, f"range: {result}")
    expect("expanding kernel range 6.1..6.3.1" in result.err and
           "[1/3] ktcache build 6.1.2" in result.err and
           "[2/3] ktcache build 6.2.1" in result.err and
           "[3/3] ktcache build 6.3.1" in result.err, result.err)
    expect("build range 6.1..6.3.1: 1/3 version(s) failed: 6.2.1"
           in result.err, result.err)
    printed = result.out.split()
    expect(len(printed) == 2 and all(os.path.isdir(p) for p in printed),
           f"stdout {result.out!r}")
    expect(f.builds() == 2, f"{f.builds()} builds")
    for path in printed:
        with open(os.path.join(path, "config"), encoding="utf-8") as text:
            expect("CONFIG_HZ=250" in text.read().splitlines(),
                   f"{path}: --kconfig-set not applied")
    # --json: one array; the built ones are now hits.
    result = f.build("6.1..6.3.1", "--kconfig-set", "CONFIG_HZ=250",
                     "--json")
    expect(result.code == EXIT_NOT_FOUND, f"range --json: {result}")
    items = json.loads(result.out)
    expect([item["version"] for item in items] == ["6.1.2", "6.2.1", "6.3.1"],
           f"items {items}")
    expect([item["ok"] for item in items] == [True, False, True], f"{items}")
    expect(items[0]["entry"]["outcome"] == "hit" and
           items[0]["entry"]["path"] == printed[0] and
           items[0]["error"] is None, f"{items[0]}")
    expect(items[1]["entry"] is None and "6.2.1" in items[1]["error"],
           f"{items[1]}")
    # Every version there: exit 0.
    f.serve_kernel("6.2.1")
    result = f.build("6.1..6.3.1", "--kconfig-set", "CONFIG_HZ=250")
    expect(result.code == EXIT_OK and len(result.out.split()) == 3,
           f"all there: {result}")
    expect(f.builds() == 3, f"{f.builds()} builds")
    # --sha256 names one tarball.
    f.build("6.1..6.3.1", "--sha256", "0" * 64, expect_status=EXIT_USAGE)


CASES = {name[len("case_"):]: function
         for name, function in sorted(globals().items())
         if name.startswith("case_")}


def main(argv):
    global CLI, PLUGINS
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    CLI, PLUGINS = (os.path.abspath(path) for path in argv[1:3])
    names = argv[3:] or list(CASES)
    unknown = [name for name in names if name not in CASES]
    if unknown:
        print(f"unknown cases: {' '.join(unknown)}", file=sys.stderr)
        return 2
    os.umask(0o022)
    failed = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix="ktc-releases-") as root:
            fixture = Fixture(root)
            started = time.monotonic()
            try:
                CASES[name](fixture)
                print(f"ok   {name} ({time.monotonic() - started:.1f} s)")
            except (Failure, subprocess.SubprocessError, OSError, KeyError,
                    ValueError, TypeError) as error:
                failed.append(name)
                print(f"FAIL {name}: {type(error).__name__}: {error}")
            finally:
                fixture.close()
    print(f"{len(names) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
