#!/usr/bin/env python3
"""`ktcache resolve` and kernel identifiers end to end over fake trees.

Usage: test_resolve.py KTCACHE_CLI PLUGIN_DIR [CASE...]

Reuses the build tests' scratch directories (test_build_pipeline.py): every
case runs the real CLI with the shipped plugins, and builds are counted by
the fake tree itself.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_build_pipeline as pipeline  # noqa: E402
from test_build_pipeline import expect, git  # noqa: E402


def resolve_json(scratch, *args, **kwargs):
    result = scratch.ktcache("resolve", "--json", *args, **kwargs)
    return json.loads(result.stdout.strip().splitlines()[-1])


def last_line(result):
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def case_miss_is_built_unless_no_build(scratch):
    tree = scratch.git_tree()
    refused = scratch.ktcache("resolve", "--no-build", tree, expect_status=1)
    expect("is not cached" in refused.stderr, refused.stderr)
    expect(refused.stdout == "", f"stdout on a miss: {refused.stdout!r}")
    expect(scratch.builds() == 0, "--no-build ran make")
    expect(scratch.entries() == [], "--no-build stored something")

    built = resolve_json(scratch, tree)
    expect(built["resolve"]["outcome"] == "built", f"{built['resolve']}")
    expect(built["resolve"]["kind"] == "path", f"{built['resolve']}")
    expect(scratch.builds() == 1, f"{scratch.builds()} builds")
    key = built["key"]
    # A relative path to the same tree is the same kernel, and a hit.
    hit = subprocess.run(
        [pipeline.CLI, "--cache-dir", scratch.cache, "--plugin-dir",
         pipeline.PLUGINS, "resolve", "./tree"], cwd=scratch.dir,
        capture_output=True, text=True, env=scratch.env())
    expect(hit.returncode == 0, hit.stderr)
    expect(last_line(hit) == built["path"], f"{hit.stdout!r}")
    expect(scratch.builds() == 1, "a hit ran make")
    no_build = scratch.ktcache("resolve", "--no-build", tree)
    expect(last_line(no_build) == os.path.join(scratch.cache, key),
           no_build.stdout)
    # The build options are part of the key, as for `ktcache build`.
    tuned = resolve_json(scratch, tree, "--kconfig-set", "CONFIG_HZ=1000")
    expect(tuned["key"] != key and
           tuned["resolve"]["outcome"] == "built", f"{tuned['resolve']}")
    expect("CONFIG_HZ=1000" in open(tuned["config_path"]).read(),
           "--kconfig-set did not reach the build")


def case_key_is_looked_up_never_built(scratch):
    tree = scratch.git_tree()
    built, _ = scratch.build_json("local:" + tree)
    found = resolve_json(scratch, built["key"])
    expect(found["resolve"]["outcome"] == "hit" and
           found["resolve"]["kind"] == "key", f"{found['resolve']}")
    missing = scratch.ktcache("resolve", "6.1.2-tarball-x86_64-kc0000",
                              expect_status=1)
    expect("cache key 6.1.2-tarball-x86_64-kc0000 not found" in
           missing.stderr and "ktcache list" in missing.stderr,
           missing.stderr)
    expect(len(missing.stderr.strip().splitlines()) == 1, missing.stderr)
    refused = scratch.ktcache("build", built["key"], expect_status=2)
    expect("is a cache key" in refused.stderr, refused.stderr)
    expect(scratch.builds() == 1, "a key built something")


def case_paths_to_entries_name_them(scratch):
    tree = scratch.git_tree()
    built, _ = scratch.build_json("local:" + tree)
    for path in (built["path"], built["path"] + "/",
                 os.path.join(built["path"], "vmlinux"),
                 os.path.join(built["path"], "bzImage")):
        found = resolve_json(scratch, path)
        expect(found["key"] == built["key"] and
               found["resolve"]["outcome"] == "hit", f"{path}: {found}")
    outside = scratch.ktcache("resolve", os.path.join(tree, "Makefile"),
                              expect_status=2)
    expect("is a file outside any entry" in outside.stderr, outside.stderr)
    missing = scratch.ktcache("resolve", scratch.path("nowhere"),
                              expect_status=1)
    expect("nowhere" in missing.stderr, missing.stderr)
    expect(scratch.builds() == 1, "a path to an entry built something")


def case_malformed_identifiers(scratch):
    cases = [
        ("6.14..6.12", "the start 6.14 is after the end 6.12"),
        ("6.12..", "the end is empty"),
        ("..6.12", "the start is empty"),
        ("git+https://example.org/linux", "no '#REF' after the URL"),
        ("git+#main", "the repository URL is empty"),
        ("git+https://example.org/linux#", "the ref is empty"),
        ("6.12.3.4", "is not a kernel version"),
        ("", "an empty kernel identifier"),
    ]
    for text, message in cases:
        for command in ("resolve", "build"):
            result = scratch.ktcache(command, text, expect_status=2)
            lines = result.stderr.strip().splitlines()
            expect(len(lines) == 1 and message in lines[0] and
                   lines[0].startswith("ktcache: "),
                   f"{command} {text!r}: {result.stderr!r}")
    # Only build expands a range (tests/build/test_releases.py).
    several = scratch.ktcache("resolve", "6.12..6.14", expect_status=2)
    expect("names several kernels" in several.stderr, several.stderr)
    expect(not os.path.exists(scratch.cache) or
           scratch.entries() == [], "a malformed identifier stored")


def case_git_plus_and_git_scheme_agree(scratch):
    tree = scratch.git_tree()
    git("branch", "-M", "main", cwd=tree)
    plus = resolve_json(scratch, f"git+file://{tree}#main")
    expect(plus["resolve"]["outcome"] == "built" and
           plus["resolve"]["kind"] == "git", f"{plus['resolve']}")
    scheme = resolve_json(scratch, f"git:file://{tree}@main")
    expect(scheme["resolve"]["outcome"] == "hit" and
           scheme["key"] == plus["key"], f"{scheme['resolve']}")
    expect(scratch.builds() == 1, f"{scratch.builds()} builds")


def case_newest_discovery(scratch):
    old_tree = scratch.git_tree("old", version="6.1.2")
    new_tree = scratch.git_tree("new", version="6.2.1")
    old, _ = scratch.build_json("local:" + old_tree)
    # built_at has whole seconds: the second entry must be newer.
    time.sleep(1.1)
    new, _ = scratch.build_json("local:" + new_tree)
    newest = resolve_json(scratch, "--newest")
    expect(newest["key"] == new["key"] and
           newest["resolve"]["outcome"] == "newest", f"{newest['resolve']}")
    narrowed = resolve_json(scratch, "--newest", "6.1")
    expect(narrowed["key"] == old["key"], f"--newest 6.1: {narrowed['key']}")
    exact = resolve_json(scratch, "--newest", "6.1.2")
    expect(exact["key"] == old["key"], f"--newest 6.1.2: {exact['key']}")
    none = scratch.ktcache("resolve", "--newest", "6.3", expect_status=1)
    expect("no usable cached kernel for x86_64 6.3.x" in none.stderr,
           none.stderr)
    other_arch = scratch.ktcache("resolve", "--newest", "--arch", "aarch64",
                                 expect_status=1)
    expect("2 of another arch or version" in other_arch.stderr,
           other_arch.stderr)

    # A kconfig hash that differs from the entries' makes them stale.
    recorded = new["metadata"]["kconfig_hash"]
    expect(recorded, f"no kconfig_hash in {new['metadata']}")
    matching = resolve_json(scratch, "--newest", "--kconfig-hash", recorded)
    expect(matching["key"] == new["key"], f"{matching['key']}")
    stale = scratch.ktcache("resolve", "--newest", "--kconfig-hash",
                            "0" * 16, expect_status=1)
    expect("2 with a stale kconfig" in stale.stderr, stale.stderr)

    # An entry whose vmlinux is gone is passed over for the older one.
    os.chmod(new["path"], 0o755)
    os.unlink(os.path.join(new["path"], "vmlinux"))
    fallback = resolve_json(scratch, "--newest")
    expect(fallback["key"] == old["key"], f"{fallback['key']}")
    expect(scratch.builds() == 2, "--newest built something")
    refused = scratch.ktcache("resolve", "--newest", "git+x#y",
                              expect_status=2)
    expect("narrowed by a version or a series" in refused.stderr,
           refused.stderr)


def case_dirty_tree_is_built_not_stored(scratch):
    tree = scratch.git_tree()
    with open(os.path.join(tree, "Makefile"), "a", encoding="utf-8") as out:
        out.write("\n# local change\n")
    miss = scratch.ktcache("resolve", "--no-build", tree, expect_status=1)
    expect("dirty tree" in miss.stderr, miss.stderr)
    built = scratch.ktcache("resolve", tree)
    image = last_line(built)
    expect(image.startswith(tree) and os.path.isfile(image),
           f"not the tree's image: {built.stdout!r}")
    expect(scratch.entries() == [], "a dirty tree was stored")


def case_run_resolves_identifiers(scratch):
    tree = scratch.git_tree()
    marker = scratch.path("ran")
    command = ["--", "sh", "-c", f'echo "$KTCACHE_KEY" >"{marker}"']
    missing = scratch.ktcache("run", "--no-build", tree, *command,
                              expect_status=1)
    expect("is not cached" in missing.stderr, missing.stderr)
    expect(not os.path.exists(marker), "COMMAND ran without an entry")
    scratch.ktcache("run", tree, *command)
    with open(marker, encoding="utf-8") as ran:
        key = ran.read().strip()
    expect(key.startswith("local-") and scratch.builds() == 1,
           f"key {key!r}, {scratch.builds()} builds")
    os.unlink(marker)
    scratch.ktcache("run", "--no-build", f"git+file://{tree}#HEAD",
                    *command, expect_status=1)
    scratch.ktcache("run", tree, *command)
    with open(marker, encoding="utf-8") as ran:
        expect(ran.read().strip() == key, "a second run was not a hit")
    expect(scratch.builds() == 1, "a hit ran make")


CASES = [
    case_miss_is_built_unless_no_build,
    case_key_is_looked_up_never_built,
    case_paths_to_entries_name_them,
    case_malformed_identifiers,
    case_git_plus_and_git_scheme_agree,
    case_newest_discovery,
    case_dirty_tree_is_built_not_stored,
    case_run_resolves_identifiers,
]


if __name__ == "__main__":
    sys.exit(pipeline.run_cases(CASES, "ktcache-resolve-"))
