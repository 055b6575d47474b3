#!/usr/bin/env python3
"""The git source plugin (source_git.so) through the ktcache CLI.

Usage: check_source_git.py KTCACHE PLUGIN_DIR LIBKTCACHE [CASE...]

Runs the named cases (all of them without a CASE) against throwaway
repositories made with `git init` in a temporary directory (HOME there too,
GIT_CONFIG_NOSYSTEM=1). ktcache finds git through PATH, whose first entry
is a counting wrapper: it logs each invocation (its exit status and argv)
and runs the real git by absolute path, so a case can tell how many git
processes a command ran and with which arguments. The wrapper can also
misbehave on request (see WRAPPER): fail every shallow fetch, fail
ls-remote without running it, or commit to a branch of the served
repository just before the first fetch (a branch that moves between
resolve and acquire).

Refused fetches by hash: a served repository sets
uploadpack.allowReachableSHA1InWant and allowAnySHA1InWant to false. Over
protocol v2 (git's default since 2.26) git's upload-pack ignores both
("wants can be anything", gitprotocol-v2), over file:// and git daemon
alike, so the cases that need a refusal make git speak protocol v0
(GIT_CONFIG_COUNT: protocol.version=0), as a server without v2 would: then
the local transport honours the settings. The git daemon case runs when
`git daemon` is installed (package git has it in its exec path) and is
skipped otherwise.

LIBKTCACHE is libktcache.so, for ktc_key_compose(): it shows that the key
parts of a ref with '/' become a valid key.

Exits 0 when every case passed, 1 when one failed, 77 when every case run
was skipped.
"""

import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3
EXIT_NETWORK = 9
EXIT_SKIP = 77

# The counting git. Its log has one line per invocation: the exit status,
# then each argument, separated by tabs (no argument here has a tab). Only
# invocations from outside git are logged: git's own children that run
# `git` again see KTC_GIT_NESTED.
WRAPPER = r"""#!/bin/sh
real='@REAL_GIT@'
if [ -n "$KTC_GIT_NESTED" ]; then
  exec "$real" "$@"
fi
KTC_GIT_NESTED=1
export KTC_GIT_NESTED

# The subcommand: the first argument that is no option (-C and -c take one).
sub=
skip=0
shallow=0
for arg in "$@"; do
  if [ "$skip" = 1 ]; then
    skip=0
    continue
  fi
  case $arg in
  -C | -c) skip=1 ;;
  -*) ;;
  *) [ -z "$sub" ] && sub=$arg ;;
  esac
done
for arg in "$@"; do
  case $arg in
  --depth | --depth=*) shallow=1 ;;
  esac
done

log() {
  {
    printf '%s' "$1"
    shift
    for arg in "$@"; do
      printf '\t%s' "$arg"
    done
    printf '\n'
  } >>"$KTC_GIT_LOG"
}

# KTC_GIT_MOVE=WORKTREE: just before the first fetch, a new commit on the
# branch checked out in WORKTREE (once).
if [ "$sub" = fetch ] && [ -n "$KTC_GIT_MOVE" ] &&
  [ ! -e "$KTC_GIT_MOVE.moved" ]; then
  : >"$KTC_GIT_MOVE.moved"
  "$real" -C "$KTC_GIT_MOVE" commit -q --allow-empty -m moved || exit 125
fi
# KTC_GIT_FAIL_DEPTH=1: a server without shallow support.
if [ "$sub" = fetch ] && [ "$shallow" = 1 ] && [ -n "$KTC_GIT_FAIL_DEPTH" ]; then
  log 128 "$@"
  echo "fatal: (test) the server does not support shallow fetches" >&2
  exit 128
fi
# KTC_GIT_FAIL_LS_REMOTE=1: any remote is unreachable; nothing is run.
if [ "$sub" = ls-remote ] && [ -n "$KTC_GIT_FAIL_LS_REMOTE" ]; then
  log 128 "$@"
  echo "fatal: (test) unable to connect" >&2
  exit 128
fi
"$real" "$@"
status=$?
log "$status" "$@"
exit "$status"
"""


class CheckFailed(Exception):
    pass


class Skipped(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def equal(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


class Call:
    """One git invocation the wrapper logged."""

    def __init__(self, line):
        fields = line.rstrip("\n").split("\t")
        self.status = int(fields[0])
        self.argv = fields[1:]
        self.sub = None
        skip = False
        for arg in self.argv:
            if skip:
                skip = False
            elif arg in ("-C", "-c"):
                skip = True
            elif not arg.startswith("-"):
                self.sub = arg
                break

    def __repr__(self):
        return f"<git {' '.join(self.argv)} -> {self.status}>"

    def after_sub(self):
        """The arguments after the subcommand."""
        return self.argv[self.argv.index(self.sub) + 1:]


class Run:
    def __init__(self, status, stdout, stderr, calls):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.calls = calls

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError as error:
            raise CheckFailed(f"not JSON ({error}): {self.stdout!r}")

    def subs(self):
        return [call.sub for call in self.calls]

    def error_line(self):
        """The one-line error message, checked to be one line."""
        lines = [line for line in self.stderr.splitlines()
                 if line.startswith("ktcache: ")
                 and not line.startswith(("ktcache: debug:", "ktcache: info:",
                                          "ktcache: trace:", "ktcache: warn:",
                                          "ktcache: fetch"))]
        check(len(lines) == 1, f"expected one error line, got {self.stderr!r}")
        return lines[0]


class Fixture:
    def __init__(self, cli, plugins, library, root):
        self.cli = cli
        self.plugins = plugins
        self.library = library
        self.root = root
        self.cache = os.path.join(root, "cache")
        self.log = os.path.join(root, "git.log")
        self.real_git = os.path.realpath(shutil.which("git") or "")
        if not os.access(self.real_git, os.X_OK):
            raise Skipped("git is not installed")
        home = os.path.join(root, "home")
        os.makedirs(home)
        wrapper_dir = os.path.join(root, "bin")
        os.makedirs(wrapper_dir)
        wrapper = os.path.join(wrapper_dir, "git")
        with open(wrapper, "w", encoding="utf-8") as out:
            out.write(WRAPPER.replace("@REAL_GIT@", self.real_git))
        os.chmod(wrapper, 0o755)

        # LD_PRELOAD (a sanitizer runtime, see tests/meson.build) is for
        # this interpreter's ctypes load only, not for git or the CLI.
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("GIT_", "KTC_GIT_", "KTCACHE_"))
               and key != "LD_PRELOAD"}
        env.update({
            "HOME": home,
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR": "1",
            "KTC_GIT_LOG": self.log,
        })
        self.git_env = dict(env)
        env["PATH"] = wrapper_dir + os.pathsep + os.environ.get("PATH", "")
        self.env = env
        self.srv = os.path.join(root, "srv")
        self.commits = self.make_repo(self.srv)

    # -- git, directly --------------------------------------------------

    def git(self, *args, cwd=None, env=None):
        result = subprocess.run(
            [self.real_git] + list(args), cwd=cwd, env=env or self.git_env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)
        if result.returncode != 0:
            raise CheckFailed(f"git {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def make_repo(self, path):
        """A small fake kernel tree with history:
        c0 - c1 (lightweight tag v1) - c2 (annotated tag v2) - c3 (main);
        feature/x: c3 - c4; branch dup at c1 and tag dup at c4. No ref
        points at c0; none but v2 at c2 (over protocol v0 only the tag
        object is advertised, c2 itself only peeled); none but main at
        c3."""
        self.git("-c", "init.defaultBranch=main", "init", "-q", path)
        files = {
            "Makefile": "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n"
                        "EXTRAVERSION =\nNAME = Test\n",
            "Kconfig": "mainmenu \"Test\"\n",
        }
        for name, text in files.items():
            self.write(path, name, text)
        commits = {}
        for label in ("c0", "c1", "c2", "c3"):
            self.write(path, "init/version.c", f"/* {label} */\n")
            self.git("-C", path, "add", "-A")
            self.git("-C", path, "commit", "-q", "-m", label)
            commits[label] = self.git("-C", path, "rev-parse", "HEAD")
        self.git("-C", path, "tag", "v1", commits["c1"])
        self.git("-C", path, "tag", "-a", "-m", "v2", "v2", commits["c2"])
        commits["v2_object"] = self.git("-C", path, "rev-parse", "v2")
        self.git("-C", path, "branch", "dup", commits["c1"])
        self.git("-C", path, "checkout", "-q", "-b", "feature/x")
        self.write(path, "init/version.c", "/* c4 */\n")
        self.git("-C", path, "commit", "-q", "-am", "c4")
        commits["c4"] = self.git("-C", path, "rev-parse", "HEAD")
        self.git("-C", path, "tag", "dup", commits["c4"])
        self.git("-C", path, "checkout", "-q", "main")
        self.git("-C", path, "config", "uploadpack.allowReachableSHA1InWant",
                 "false")
        self.git("-C", path, "config", "uploadpack.allowAnySHA1InWant",
                 "false")
        return commits

    @staticmethod
    def write(root, name, text):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)

    def url(self, path=None):
        return "file://" + (path or self.srv)

    # -- ktcache --------------------------------------------------------

    def ktcache(self, *args, env=None, verbose=True):
        if os.path.exists(self.log):
            os.unlink(self.log)
        run_env = dict(self.env)
        run_env.update(env or {})
        argv = [self.cli, "--cache-dir", self.cache, "--plugin-dir",
                self.plugins]
        if verbose:
            argv.append("-vv")
        result = subprocess.run(
            argv + list(args), env=run_env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=120)
        calls = []
        if os.path.exists(self.log):
            with open(self.log, encoding="utf-8") as lines:
                calls = [Call(line) for line in lines if line.strip()]
        return Run(result.returncode, result.stdout, result.stderr, calls)

    def describe(self, spec, env=None):
        run = self.ktcache("source", "describe", spec, "--json", env=env)
        equal(run.status, EXIT_OK,
              f"describe {spec} exit status ({run.stderr.strip()})")
        return run, run.json()

    def fetch(self, spec, directory, env=None):
        return self.ktcache("source", "fetch", spec, directory, "--json",
                            env=env)

    def compose_key(self, parts):
        library = ctypes.CDLL(self.library)
        library.ktc_key_compose.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t]
        library.ktc_key_compose.restype = ctypes.c_int
        library.ktc_free.argtypes = [ctypes.c_void_p]
        encoded = (ctypes.c_char_p * len(parts))(
            *[part.encode() for part in parts])
        out = ctypes.c_void_p()
        status = library.ktc_key_compose(ctypes.byref(out), encoded,
                                         len(parts))
        check(status == 0, f"ktc_key_compose({parts}) returned {status}")
        key = ctypes.string_at(out.value).decode()
        library.ktc_free(out)
        return key


V0 = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.version",
      "GIT_CONFIG_VALUE_0": "0"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_described(description, spec, url, ref, commit, remote_ref):
    equal(description["spec"], spec, "spec")
    equal(description["plugin"]["name"], "git", "plugin name")
    identity = description["identity"]
    equal(identity["commit"], commit, "identity.commit")
    equal(identity["ref"], ref, "identity.ref")
    equal(identity["url"], url, "identity.url")
    equal(identity["remote_ref"], remote_ref, "identity.remote_ref")
    equal(description["source"],
          {"type": "git", "git_hash": commit[:7], "ref": ref,
           "git_commit": commit, "url": url}, "source payload")
    equal(description["key_parts"], [ref, "git", commit[:7]], "key parts")


def check_one_ls_remote(run, url, patterns):
    equal(run.subs(), ["ls-remote"], "git commands run")
    equal(run.calls[0].after_sub(), [url] + patterns, "ls-remote arguments")


def check_left_empty(directory):
    if os.path.exists(directory) and os.listdir(directory):
        raise CheckFailed(f"{directory} is not empty after a failed fetch: "
                          f"{os.listdir(directory)}")


def fetches(run):
    return [call for call in run.calls if call.sub == "fetch"]


def check_fetched(fx, run, directory, commit):
    equal(run.status, EXIT_OK, f"fetch exit status ({run.stderr.strip()})")
    result = run.json()
    equal(result["tree"], directory, "tree")
    equal(result["identity"]["commit"], commit, "identity.commit")
    equal(fx.git("-C", directory, "rev-parse", "HEAD"), commit, "HEAD")
    check(os.path.isdir(os.path.join(directory, ".git")), ".git is kept")
    equal(fx.git("-C", directory, "status", "--porcelain"), "",
          "git status of the tree")
    check("clone" not in run.subs(), f"a clone ran: {run.calls}")
    label = fx.git("-C", fx.srv, "show", f"{commit}:init/version.c")
    with open(os.path.join(directory, "init", "version.c"),
              encoding="utf-8") as text:
        equal(text.read().strip(), label, "init/version.c")


# ---------------------------------------------------------------------------
# Describe
# ---------------------------------------------------------------------------

def case_describe_branch(fx):
    url = fx.url()
    spec = f"git:{url}@main"
    run, description = fx.describe(spec)
    check_described(description, spec, url, "main", fx.commits["c3"],
                    "refs/heads/main")
    check_one_ls_remote(run, url, ["refs/heads/main", "refs/tags/main",
                                   "refs/tags/main^{}"])
    # A plain path works the same.
    spec = f"git:{fx.srv}@main"
    run, description = fx.describe(spec)
    check_described(description, spec, fx.srv, "main", fx.commits["c3"],
                    "refs/heads/main")
    equal(run.subs(), ["ls-remote"], "git commands run")


def case_describe_lightweight_tag(fx):
    url = fx.url()
    spec = f"git:{url}@v1"
    run, description = fx.describe(spec)
    check_described(description, spec, url, "v1", fx.commits["c1"],
                    "refs/tags/v1")
    check_one_ls_remote(run, url, ["refs/heads/v1", "refs/tags/v1",
                                   "refs/tags/v1^{}"])


def case_describe_annotated_tag(fx):
    url = fx.url()
    spec = f"git:{url}@v2"
    run, description = fx.describe(spec)
    check(fx.commits["v2_object"] != fx.commits["c2"],
          "the fixture's v2 is not an annotated tag")
    # The key and the commit are the peeled commit, not the tag object.
    check_described(description, spec, url, "v2", fx.commits["c2"],
                    "refs/tags/v2")
    equal(description["identity"]["ref_object"], fx.commits["v2_object"],
          "identity.ref_object")
    equal(run.subs(), ["ls-remote"], "git commands run")


def case_describe_full_commit(fx):
    commit = fx.commits["c1"]
    # No git at all, so no network either: an unreachable URL is fine.
    url = f"git://127.0.0.1:{free_port()}/nowhere.git"
    for ref in (commit, commit.upper()):
        spec = f"git:{url}@{ref}"
        run, description = fx.describe(spec)
        equal(run.calls, [], "git commands run for a full commit")
        identity = description["identity"]
        equal(identity["commit"], commit, "identity.commit")
        equal(identity["ref"], ref, "identity.ref (verbatim)")
        equal(identity["remote_ref"], None, "identity.remote_ref")
        equal(description["source"]["git_commit"], commit, "git_commit")
        equal(description["key_parts"], [ref, "git", commit[:7]], "key parts")
    sha256 = "ab" * 32
    run, description = fx.describe(f"git:{url}@{sha256}")
    equal(run.calls, [], "git commands run for a SHA-256 commit")
    equal(description["identity"]["commit"], sha256, "SHA-256 commit")
    equal(description["source"]["git_hash"], sha256[:7], "git_hash")


def case_describe_qualified(fx):
    url = fx.url()
    spec = f"git:{url}@refs/heads/dup"
    run, description = fx.describe(spec)
    check_described(description, spec, url, "refs/heads/dup",
                    fx.commits["c1"], "refs/heads/dup")
    check_one_ls_remote(run, url, ["refs/heads/dup", "refs/heads/dup^{}"])
    spec = f"git:{url}@refs/tags/dup"
    run, description = fx.describe(spec)
    check_described(description, spec, url, "refs/tags/dup",
                    fx.commits["c4"], "refs/tags/dup")
    spec = f"git:{url}@refs/tags/v2"
    run, description = fx.describe(spec)
    check_described(description, spec, url, "refs/tags/v2",
                    fx.commits["c2"], "refs/tags/v2")
    spec = f"git:{url}@HEAD"
    run, description = fx.describe(spec)
    check_described(description, spec, url, "HEAD", fx.commits["c3"], "HEAD")
    check_one_ls_remote(run, url, ["HEAD"])


def case_describe_slash_ref(fx):
    url = fx.url()
    spec = f"git:{url}@feature/x"
    run, description = fx.describe(spec)
    check_described(description, spec, url, "feature/x", fx.commits["c4"],
                    "refs/heads/feature/x")
    check_one_ls_remote(run, url, ["refs/heads/feature/x",
                                   "refs/tags/feature/x",
                                   "refs/tags/feature/x^{}"])
    key = fx.compose_key(description["key_parts"] + ["x86_64", "kc00000000"])
    check("/" not in key and key.startswith("feature_x~"),
          f"the key of feature/x is not made safe: {key}")
    check(key.endswith(f"-git-{fx.commits['c4'][:7]}-x86_64-kc00000000"),
          f"unexpected key {key}")
    other = fx.compose_key(["feature_x", "git", fx.commits["c4"][:7],
                            "x86_64", "kc00000000"])
    check(other != key, f"feature/x and feature_x share the key {key}")


def case_describe_ambiguous(fx):
    url = fx.url()
    run = fx.ktcache("source", "describe", f"git:{url}@dup", "--json")
    equal(run.status, EXIT_USAGE, "exit status of an ambiguous ref")
    line = run.error_line()
    for word in ("ambiguous", "refs/heads/dup", "refs/tags/dup",
                 fx.commits["c1"][:7], fx.commits["c4"][:7], url):
        check(word in line, f"{word!r} missing from {line!r}")
    equal(run.subs(), ["ls-remote"], "git commands run")


def case_describe_unknown_ref(fx):
    url = fx.url()
    for ref in ("nope", "feature/nope", "refs/heads/nope", "abc1234"):
        run = fx.ktcache("source", "describe", f"git:{url}@{ref}")
        equal(run.status, EXIT_NOT_FOUND, f"exit status for {ref}")
        line = run.error_line()
        check(f"no ref {ref} at {url}" in line, f"unclear message: {line!r}")
        equal(run.subs(), ["ls-remote"], "git commands run")
    check("40 hex" in line, f"no hint about abbreviated commits: {line!r}")


def case_describe_unreachable(fx):
    for url in (f"git://127.0.0.1:{free_port()}/linux.git",
                f"file://{fx.root}/missing.git",
                f"{fx.root}/missing.git"):
        run = fx.ktcache("source", "describe", f"git:{url}@main")
        line = run.error_line()
        equal(run.status, EXIT_NETWORK,
              f"exit status for the unreachable {url} ({line})")
        check(f"cannot list the refs of {url}" in line,
              f"unclear message: {line!r}")
        check("status 128" in line, f"no git status in {line!r}")
        equal(run.subs(), ["ls-remote"], "git commands run")


def case_malformed(fx):
    cases = {
        "git:": "no URL and no ref",
        "git:url": "no @REF after the URL",
        "git:@ref": "no URL before the '@'",
        "git:url@": "no ref after the last '@'",
        "git:/srv/linux.git@": "no ref after the last '@'",
        "git:git@github.com:x/y.git": "is not a ref name",
        "git:--upload-pack=touch x@main": "may not start with '-'",
        "git:/srv/linux.git@v1..v2": "is not a ref name",
        "git:/srv/linux.git@v1^{}": "is not a ref name",
        "git:/srv/linux.git@-x": "is not a ref name",
    }
    for spec, cause in cases.items():
        for command in (["source", "describe", spec],
                        ["source", "fetch", spec,
                         os.path.join(fx.root, "malformed")]):
            run = fx.ktcache(*command)
            equal(run.status, EXIT_USAGE, f"exit status of {command}")
            line = run.error_line()
            check(f"{spec}: " in line and cause in line,
                  f"{command}: the message does not name the spec and "
                  f"'{cause}': {line!r}")
            check("git:URL@REF" in line or "not start" in line,
                  f"no expected form in {line!r}")
            equal(run.calls, [], f"git commands run for {spec}")
            check_left_empty(os.path.join(fx.root, "malformed"))


def case_last_at(fx):
    # URLs with '@' of their own: the spec splits at its last '@'.
    mirror = os.path.join(fx.root, "user@mirror", "linux@2.git")
    fx.git("clone", "-q", "--bare", "--no-local", fx.srv, mirror)
    for url in (mirror, "file://" + mirror):
        spec = f"git:{url}@feature/x"
        run, description = fx.describe(spec)
        check_described(description, spec, url, "feature/x",
                        fx.commits["c4"], "refs/heads/feature/x")
        equal(run.calls[0].after_sub()[0], url, "the URL given to git")
    # scp-like and https URLs with a user: only what git is asked counts;
    # the wrapper fails ls-remote instead of reaching out.
    for url, ref in (("git@github.com:x/y.git", "v6.1"),
                     ("https://user@git.example.invalid/linux.git", "main"),
                     ("ssh://git@host.invalid:2222/linux.git", "a/b")):
        run = fx.ktcache("source", "describe", f"git:{url}@{ref}",
                         env={"KTC_GIT_FAIL_LS_REMOTE": "1"})
        equal(run.status, EXIT_NETWORK, f"exit status for {url}")
        check_one_ls_remote(run, url, [f"refs/heads/{ref}",
                                       f"refs/tags/{ref}",
                                       f"refs/tags/{ref}^{{}}"])


# ---------------------------------------------------------------------------
# Fetch
# ---------------------------------------------------------------------------

def case_fetch_branch(fx):
    url = fx.url()
    commit = fx.commits["c3"]
    directory = os.path.join(fx.root, "tree-main")
    run = fx.fetch(f"git:{url}@main", directory)
    check_fetched(fx, run, directory, commit)
    equal(run.subs(), ["ls-remote", "init", "fetch", "checkout", "rev-parse"],
          "git commands run")
    fetch = fetches(run)[0]
    equal(fetch.status, 0, "status of the fetch by hash")
    arguments = fetch.after_sub()
    for flag in ("--depth", "--no-tags"):
        check(flag in arguments, f"{flag} missing from {fetch}")
    equal(arguments[arguments.index("--depth") + 1], "1", "depth")
    equal(arguments[-2:], [url, commit], "what is fetched")
    equal(fx.git("-C", directory, "rev-parse", "--is-shallow-repository"),
          "true", "shallow")
    equal(fx.git("-C", directory, "rev-list", "--count", "HEAD"), "1",
          "commits fetched")
    # Not JSON: the tree's path is the last line of stdout.
    other = os.path.join(fx.root, "tree-main-2")
    run = fx.ktcache("source", "fetch", f"git:{url}@main", other)
    equal(run.status, EXIT_OK, f"fetch exit status ({run.stderr.strip()})")
    equal(run.stdout.strip().splitlines()[-1], other, "printed tree")


def case_fetch_tags(fx):
    url = fx.url()
    # Annotated: the tag comes along, so describe-like scripts see it.
    directory = os.path.join(fx.root, "tree-v2")
    run = fx.fetch(f"git:{url}@v2", directory)
    check_fetched(fx, run, directory, fx.commits["c2"])
    equal(len(fetches(run)), 1, "fetches")
    check(fx.commits["c2"] in fetches(run)[0].argv,
          f"the commit is not fetched by hash: {run.calls}")
    equal(fx.git("-C", directory, "rev-parse", "refs/tags/v2"),
          fx.commits["v2_object"], "the local tag v2")
    equal(fx.git("-C", directory, "describe"), "v2", "git describe")
    # Lightweight.
    directory = os.path.join(fx.root, "tree-v1")
    run = fx.fetch(f"git:{url}@v1", directory)
    check_fetched(fx, run, directory, fx.commits["c1"])
    equal(len(fetches(run)), 1, "fetches")
    equal(fx.git("-C", directory, "describe", "--tags"), "v1",
          "git describe --tags")
    # Fully qualified.
    directory = os.path.join(fx.root, "tree-refs-tags-dup")
    run = fx.fetch(f"git:{url}@refs/tags/dup", directory)
    check_fetched(fx, run, directory, fx.commits["c4"])


def case_fetch_full_commit(fx):
    url = fx.url()
    commit = fx.commits["c0"]  # no ref's tip; protocol v2 sends it anyway
    directory = os.path.join(fx.root, "tree-c0")
    run = fx.fetch(f"git:{url}@{commit}", directory)
    check_fetched(fx, run, directory, commit)
    equal(run.subs(), ["init", "fetch", "checkout", "rev-parse"],
          "git commands run (no ls-remote)")
    equal(fetches(run)[0].after_sub()[-2:], [url, commit], "what is fetched")


def case_fetch_slash_ref(fx):
    url = fx.url()
    directory = os.path.join(fx.root, "tree-feature")
    run = fx.fetch(f"git:{url}@feature/x", directory)
    check_fetched(fx, run, directory, fx.commits["c4"])
    equal(len(fetches(run)), 1, "fetches")


def check_fallback(fx, run, directory, commit, url, refspec):
    check_fetched(fx, run, directory, commit)
    attempts = fetches(run)
    equal(len(attempts), 2, f"fetches ({attempts})")
    check(attempts[0].status != 0,
          f"the fetch by hash was not refused: {attempts[0]}")
    check(commit in attempts[0].argv, f"not a fetch by hash: {attempts[0]}")
    equal(attempts[1].status, 0, "status of the fetch by name")
    arguments = attempts[1].after_sub()
    check("--depth" in arguments, f"the fetch by name is not shallow: "
          f"{attempts[1]}")
    equal(arguments[-2:], [url, refspec], "the fetch by name")


def case_fetch_fallback_refused(fx):
    url = fx.url()
    # Protocol v0 honours allowReachableSHA1InWant=false: a commit that no
    # ref advertises (the peeled commit of an annotated tag) is refused.
    directory = os.path.join(fx.root, "tree-v2-v0")
    run = fx.fetch(f"git:{url}@v2", directory, env=V0)
    check_fallback(fx, run, directory, fx.commits["c2"], url,
                   "+refs/tags/v2:refs/tags/v2")
    equal(fx.git("-C", directory, "describe"), "v2", "git describe")
    # A full commit no ref points at has no name to fall back to.
    directory = os.path.join(fx.root, "tree-c0-v0")
    os.makedirs(directory)
    run = fx.fetch(f"git:{url}@{fx.commits['c0']}", directory, env=V0)
    equal(run.status, EXIT_NOT_FOUND, "exit status of a refused commit")
    line = run.error_line()
    for word in (fx.commits["c0"], url, "by hash"):
        check(word in line, f"{word!r} missing from {line!r}")
    check_left_empty(directory)


def case_fetch_fallback_daemon(fx):
    exec_path = fx.git("--exec-path")
    if not os.access(os.path.join(exec_path, "git-daemon"), os.X_OK):
        raise Skipped(f"git daemon is not installed in {exec_path}")
    port = free_port()
    daemon = subprocess.Popen(
        [fx.real_git, "daemon", "--reuseaddr", "--export-all",
         "--informative-errors", f"--base-path={fx.root}",
         "--listen=127.0.0.1", f"--port={port}", fx.root],
        env=fx.git_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise CheckFailed(f"git daemon did not listen on {port}")
                time.sleep(0.05)
        url = f"git://127.0.0.1:{port}/srv"
        directory = os.path.join(fx.root, "tree-daemon-main")
        run = fx.fetch(f"git:{url}@main", directory)
        check_fetched(fx, run, directory, fx.commits["c3"])
        equal(len(fetches(run)), 1, "fetches over protocol v2")
        directory = os.path.join(fx.root, "tree-daemon-v2")
        run = fx.fetch(f"git:{url}@v2", directory, env=V0)
        check_fallback(fx, run, directory, fx.commits["c2"], url,
                       "+refs/tags/v2:refs/tags/v2")
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def case_fetch_full_fallback(fx):
    # A server that cannot fetch shallow: the ref in full is the last resort.
    url = fx.url()
    directory = os.path.join(fx.root, "tree-full")
    run = fx.fetch(f"git:{url}@main", directory,
                   env={"KTC_GIT_FAIL_DEPTH": "1"})
    check_fetched(fx, run, directory, fx.commits["c3"])
    attempts = fetches(run)
    equal([call.status for call in attempts], [128, 128, 0],
          f"fetch statuses ({attempts})")
    check(fx.commits["c3"] in attempts[0].argv, "first: by hash")
    equal(attempts[1].after_sub()[-1], "refs/heads/main", "second: by name")
    check("--depth" not in attempts[2].argv, "third: in full")
    equal(fx.git("-C", directory, "rev-parse", "--is-shallow-repository"),
          "false", "shallow")


def case_fetch_moved_branch(fx):
    # The branch moves between resolve and acquire (the wrapper commits to
    # it just before the first fetch) on a server that refuses commits by
    # hash: the fetch by name finds another commit.
    repo = os.path.join(fx.root, "moving")
    commits = fx.make_repo(repo)
    url = fx.url(repo)
    directory = os.path.join(fx.root, "tree-moved")
    os.makedirs(directory)
    env = dict(V0, KTC_GIT_MOVE=repo)
    run = fx.fetch(f"git:{url}@main", directory, env=env)
    moved_to = fx.git("-C", repo, "rev-parse", "main")
    check(moved_to != commits["c3"], "the wrapper did not move main")
    line = run.error_line()
    equal(run.status, EXIT_INTEGRITY, f"exit status ({line})")
    for word in ("moved", commits["c3"], moved_to, "refs/heads/main", url):
        check(word in line, f"{word!r} missing from {line!r}")
    check_left_empty(directory)
    attempts = fetches(run)
    equal(len(attempts), 2, f"fetches ({attempts})")
    check(attempts[0].status != 0, f"not refused: {attempts[0]}")

    # Over protocol v2 the resolved commit is still fetched by hash: the
    # tree is what resolve saw, not the branch's new tip.
    os.unlink(repo + ".moved")
    directory = os.path.join(fx.root, "tree-moved-v2")
    before = fx.git("-C", repo, "rev-parse", "main")
    run = fx.fetch(f"git:{url}@main", directory, env={"KTC_GIT_MOVE": repo})
    check(fx.git("-C", repo, "rev-parse", "main") != before,
          "the wrapper did not move main")
    equal(run.status, EXIT_OK, f"exit status ({run.stderr.strip()})")
    equal(fx.git("-C", directory, "rev-parse", "HEAD"), before, "HEAD")
    equal(len(fetches(run)), 1, "fetches")


def case_fetch_failures(fx):
    url = fx.url()
    directory = os.path.join(fx.root, "tree-failures")
    os.makedirs(directory)
    run = fx.fetch(f"git:{url}@nope", directory)
    equal(run.status, EXIT_NOT_FOUND, "exit status of an unknown ref")
    equal(run.subs(), ["ls-remote"], "git commands run")
    check_left_empty(directory)
    run = fx.fetch(f"git:{url}@dup", directory)
    equal(run.status, EXIT_USAGE, "exit status of an ambiguous ref")
    check_left_empty(directory)
    unreachable = f"git://127.0.0.1:{free_port()}/linux.git"
    run = fx.fetch(f"git:{unreachable}@main", directory)
    equal(run.status, EXIT_NETWORK, "exit status of an unreachable URL")
    check_left_empty(directory)
    # A full commit needs no ls-remote; the fetch itself fails.
    run = fx.fetch(f"git:{unreachable}@{fx.commits['c1']}", directory)
    equal(run.status, EXIT_NOT_FOUND, "exit status of an unreachable commit")
    equal(run.subs(), ["init", "fetch"], "git commands run")
    check_left_empty(directory)


CASES = {
    name[len("case_"):]: function
    for name, function in sorted(globals().items())
    if name.startswith("case_")
}


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    cli, plugins, library = (os.path.abspath(path) for path in argv[1:4])
    names = argv[4:] or list(CASES)
    unknown = [name for name in names if name not in CASES]
    if unknown:
        print(f"unknown cases: {' '.join(unknown)} (known: "
              f"{' '.join(CASES)})", file=sys.stderr)
        return 2
    failed = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="ktc-source-git-") as root:
        try:
            fixture = Fixture(cli, plugins, library, root)
        except Skipped as reason:
            print(f"SKIP: {reason}")
            return EXIT_SKIP
        for name in names:
            try:
                CASES[name](fixture)
                print(f"ok   {name}")
            except Skipped as reason:
                skipped.append(name)
                print(f"SKIP {name}: {reason}")
            except (CheckFailed, subprocess.TimeoutExpired, OSError,
                    KeyError, ValueError) as error:
                failed.append(name)
                print(f"FAIL {name}: {type(error).__name__}: {error}")
    if failed:
        print(f"{len(failed)} of {len(names)} failed: {' '.join(failed)}")
        return 1
    if len(skipped) == len(names):
        return EXIT_SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
