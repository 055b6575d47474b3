#!/usr/bin/env python3
"""Proves that tools/ci-count sums meson test logs as .ci/run needs.

Usage: ci_count_test.py CI_COUNT

Feeds ci-count made-up testlog.json files (doctest binaries that pass, fail,
crash or leak; scripts that pass, skip, fail or time out; libFuzzer runs
that pass, crash or time out; a missing log; a failed build step) and checks
the one line it prints and its exit status.
"""

import json
import os
import subprocess
import sys
import tempfile


def doctest_output(cases, passed, failed, skipped):
    return ('[doctest] doctest version is "2.4.9"\n'
            f"[doctest] test cases: {cases} | {passed} passed | "
            f"{failed} failed | {skipped} skipped\n"
            "[doctest] assertions: 9 | 9 passed | 0 failed |\n"
            "[doctest] Status: SUCCESS!\n")


CRASHED = '[doctest] doctest version is "2.4.9"\n'

# A libFuzzer run's output; its dictionary lines quote whatever strings the
# code compared inputs with, here doctest's marker and a summary line.
FUZZ_OK = ("INFO: Seed: 1\n#2\tINITED cov: 910 ft: 1864 corp: 21/373Kb\n"
           '#4\tNEW cov: 911 MS: 1 CMP- DE: "[doctest]"-\n'
           '#6\tNEW cov: 912 MS: 1 CMP- DE: "[doctest] test cases: 5 | 5 '
           'passed | 0 failed | 0 skipped"-\nDone 20000 runs in 61 second(s)\n')
FUZZ_CRASH = (FUZZ_OK.replace("Done 20000 runs in 61 second(s)\n", "")
              + "==1== ERROR: AddressSanitizer: heap-buffer-overflow\n"
              "artifact_prefix='a/'; Test unit written to a/crash-0123\n")

# (testlog entries, failed steps, missing logs, expected line, exit status)
CASES = {
    "all-pass": (
        [("unit", "OK", doctest_output(12, 11, 0, 1)),
         ("abi-symbols", "OK", "ok: 33 symbols\n")],
        [], 0, "12 passed, 0 failed, 1 skipped", 0),
    "doctest-failures": (
        [("unit", "FAIL", doctest_output(12, 9, 3, 0))],
        [], 0, "9 passed, 3 failed, 0 skipped", 1),
    "crash-before-summary": (
        [("capi", "FAIL", CRASHED)],
        [], 0, "0 passed, 1 failed, 0 skipped", 1),
    "sanitizer-report-after-summary": (
        [("capi", "FAIL", doctest_output(4, 4, 0, 0)
          + "==1==ERROR: LeakSanitizer: detected memory leaks\n")],
        [], 0, "4 passed, 1 failed, 0 skipped", 1),
    "scripts": (
        [("a", "OK", ""), ("b", "SKIP", ""), ("c", "FAIL", ""),
         ("d", "TIMEOUT", "")],
        [], 0, "1 passed, 2 failed, 1 skipped", 1),
    "fuzz-runs": (
        [("ktcache:fuzz / fuzz_elf_strip", "OK", FUZZ_OK),
         ("ktcache:fuzz / fuzz_ikconfig", "FAIL", FUZZ_CRASH),
         ("ktcache:fuzz / fuzz_selftest", "OK", FUZZ_CRASH),
         ("ktcache:fuzz / fuzz_slow", "TIMEOUT", FUZZ_OK)],
        [], 0, "2 passed, 2 failed, 0 skipped", 1),
    "failed-step-and-missing-log": (
        [("unit", "OK", doctest_output(2, 2, 0, 0))],
        ["build build-asan"], 1, "2 passed, 2 failed, 0 skipped", 1),
}


def run_case(ci_count, work, name, case):
    entries, steps, missing_logs, expected_line, expected_status = case
    log = os.path.join(work, f"{name}.json")
    with open(log, "w", encoding="utf-8") as out:
        for test_name, result, stdout in entries:
            out.write(json.dumps({"name": test_name, "result": result,
                                  "stdout": stdout,
                                  "command": ["/nonexistent"]}) + "\n")
    command = [sys.executable, ci_count]
    for step in steps:
        command += ["--failed-step", step]
    command.append(log)
    command += [os.path.join(work, f"missing-{i}.json")
                for i in range(missing_logs)]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = result.stdout.splitlines()
    last = lines[-1] if lines else ""
    if last != expected_line or result.returncode != expected_status:
        print(f"FAIL: {name}: printed {last!r} and exited "
              f"{result.returncode}; expected {expected_line!r} and "
              f"{expected_status}\n{result.stdout}{result.stderr}")
        return False
    print(f"ok: {name}: {last}")
    return True


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory(prefix="ci-count-") as work:
        results = [run_case(sys.argv[1], work, name, case)
                   for name, case in CASES.items()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
