#pragma once

// The doctest main of the robustness tests that need privileges (mounts,
// namespaces): each binary's own main first checks that the environment
// allows them and exits 77 (Meson's "skipped") when it does not, then
// calls run_doctest. Like the shared test main, it gives the run a scratch
// directory (ktc::test::run_dir()), kept when a test fails.

#include <string>

namespace ktc::robust {

// Meson counts a test that exits with this code as skipped.
inline constexpr int k_exit_skipped = 77;

// Runs the doctest tests; returns the process's exit code.
int run_doctest(int argc, char** argv);

// Marks the run skipped (exit 77 unless a test failed) and prints why; the
// calling test should return without checking anything more.
void skip_run(const std::string& reason);

} // namespace ktc::robust
