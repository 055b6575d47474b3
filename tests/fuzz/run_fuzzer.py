#!/usr/bin/env python3
"""Runs a libFuzzer harness for a fixed number of inputs, as a meson test.

Usage: run_fuzzer.py [--expect-crash] FUZZER CORPUS_DIR ARTIFACT_DIR RUNS
                     [LIBFUZZER_ARG]...

The committed CORPUS_DIR is only read: libFuzzer writes the inputs it finds
into the first directory it is given, so that one is a fresh scratch
directory, removed afterwards, and CORPUS_DIR comes second. A failing input
is left in ARTIFACT_DIR (crash-*, leak-*, timeout-*, oom-*), to rerun with
`FUZZER ARTIFACT`.

Exits 0 when the run ended cleanly and 1 otherwise. libFuzzer's own exit
codes are not passed on: its default error exit code is 77, which meson
takes for a skipped test.

--expect-crash inverts the verdict, for the harness with a planted bug: it
exits 0 only when the fuzzer failed with an AddressSanitizer report and
wrote the crashing input into ARTIFACT_DIR (emptied first).
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    args = sys.argv[1:]
    expect_crash = bool(args) and args[0] == "--expect-crash"
    if expect_crash:
        args = args[1:]
    if len(args) < 4:
        raise SystemExit(__doc__)
    fuzzer, corpus, artifacts, runs = args[:4]
    extra = args[4:]
    if not os.path.isdir(corpus) or not os.listdir(corpus):
        print(f"run_fuzzer: no seed corpus in {corpus}", file=sys.stderr)
        return 1
    if expect_crash:
        shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="ktc-fuzz-corpus-")
    try:
        command = [
            fuzzer,
            "-seed=1",
            f"-runs={runs}",
            "-error_exitcode=1",
            "-timeout_exitcode=1",
            "-print_final_stats=1",
            f"-artifact_prefix={os.path.join(artifacts, '')}",
            *extra,
            scratch,
            corpus,
        ]
        print(" ".join(command), flush=True)
        # Passed through as it comes (a long run reports progress), and
        # watched for a sanitizer report.
        sanitizer_report = False
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                              errors="replace") as fuzzing:
            for line in fuzzing.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                if "ERROR: AddressSanitizer" in line:
                    sanitizer_report = True
        returncode = fuzzing.returncode
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    name = os.path.basename(fuzzer)

    if expect_crash:
        crashes = glob.glob(os.path.join(artifacts, "crash-*"))
        if returncode != 0 and crashes and sanitizer_report:
            print(f"run_fuzzer: {name} failed as planted: "
                  f"{os.path.basename(crashes[0])}")
            return 0
        print(f"run_fuzzer: {name} should have failed with an "
              f"AddressSanitizer report and a crash-* input in {artifacts}; "
              f"it exited with status {returncode} and left "
              f"{len(crashes)} crash input(s)", file=sys.stderr)
        return 1

    if returncode != 0:
        print(f"run_fuzzer: {name} exited with status {returncode};"
              f" the failing input is in {artifacts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
