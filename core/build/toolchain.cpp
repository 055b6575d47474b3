#include "build/toolchain.hpp"

#include "util/process.hpp"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <tuple>

namespace ktc::build {
namespace {

// The program LLVM=<value> selects for `tool` ("clang", "ld.lld"), as the
// kernel's Makefile spells it: LLVM=1, LLVM=-14 (a suffix), LLVM=/usr/bin/
// (a prefix).
std::string llvm_program(const std::string& llvm, std::string_view tool) {
  if (llvm.starts_with('-')) {
    return fmt::format("{}{}", tool, llvm);
  }
  if (llvm.ends_with('/')) {
    return fmt::format("{}{}", llvm, tool);
  }
  return std::string(tool);
}

Result<std::string> first_version_line(const std::string& program,
                                       bool required) {
  auto output = process::run({program, "--version"}, {}, 4096);
  if (!output || output->exit_status != 0) {
    if (required) {
      return make_error(Status::not_found,
                        "{} cannot be run ({}): install it, or name another "
                        "with --cc, --llvm or --cross-compile",
                        program,
                        output
                            ? fmt::format("exit status {}", output->exit_status)
                            : output.error().message);
    }
    return std::string("none");
  }
  std::string_view text = output->standard_output;
  if (text.empty()) {
    text = output->standard_error;
  }
  std::string line(text.substr(0, text.find('\n')));
  return line.empty() ? std::string("unknown") : line;
}

} // namespace

Result<Toolchain> probe_toolchain(const ToolchainRequest& request) {
  using Key = std::tuple<std::optional<std::string>, std::optional<std::string>,
                         std::optional<std::string>>;
  static std::mutex lock;
  static std::map<Key, Toolchain> probed;
  Key key{request.cross_compile, request.cc, request.llvm};
  {
    std::lock_guard guard(lock);
    auto found = probed.find(key);
    if (found != probed.end()) {
      return found->second;
    }
  }
  std::string prefix = request.cross_compile.value_or("");
  Toolchain toolchain;
  std::string linker;
  if (request.cc) {
    toolchain.compiler_program = *request.cc;
  } else if (request.llvm) {
    toolchain.compiler_program = llvm_program(*request.llvm, "clang");
  } else {
    toolchain.compiler_program = prefix + "gcc";
  }
  linker = request.llvm ? llvm_program(*request.llvm, "ld.lld") : prefix + "ld";
  KTC_TRY_ASSIGN(toolchain.compiler,
                 first_version_line(toolchain.compiler_program, true));
  KTC_TRY_ASSIGN(toolchain.linker, first_version_line(linker, false));
  KTC_TRY_ASSIGN(toolchain.pahole, first_version_line("pahole", false));
  KTC_TRY_ASSIGN(toolchain.make, first_version_line("make", true));
  std::lock_guard guard(lock);
  probed.emplace(key, toolchain);
  return toolchain;
}

} // namespace ktc::build
