#include "build/toolchain.hpp"

#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/process.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
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

Result<std::string> run_version(const std::string& program, bool required);

// The file PATH finds for `program`, or empty.
std::string find_in_path(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return program;
  }
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/bin:/bin";
  while (true) {
    auto colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    std::string candidate =
        fmt::format("{}/{}", dir.empty() ? "." : dir, program);
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) {
      return {};
    }
    rest.remove_prefix(colon + 1);
  }
}

// Names the binary's exact bytes well enough: a reinstalled compiler has
// another inode or mtime.
std::optional<std::string> binary_identity(const std::string& program) {
  std::string file = find_in_path(program);
  struct stat st;
  if (file.empty() || ::stat(file.c_str(), &st) != 0) {
    return std::nullopt;
  }
  return fmt::format("{}|{}|{}|{}|{}.{}", file, st.st_dev, st.st_ino,
                     st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

class VersionMemo {
public:
  explicit VersionMemo(std::string file) : m_file(std::move(file)) {
    if (m_file.empty()) {
      return;
    }
    auto text = fs::read_file(AT_FDCWD, m_file);
    if (!text) {
      return;
    }
    boost::system::error_code error;
    auto parsed = boost::json::parse(*text, error);
    if (!error && parsed.is_object()) {
      m_known = std::move(parsed.as_object());
    }
  }

  std::optional<std::string> find(const std::string& identity) const {
    const auto* value = m_known.if_contains(identity);
    if (value != nullptr && value->is_string()) {
      return std::string(value->as_string());
    }
    return std::nullopt;
  }

  void add(const std::string& identity, const std::string& line) {
    m_known[identity] = line;
    m_changed = true;
  }

  // Written whole to a temporary file and renamed: concurrent writers
  // each leave a complete file, and a lost update only costs a probe.
  void save() const {
    if (m_file.empty() || !m_changed) {
      return;
    }
    std::string temp = fmt::format("{}.tmp-{}", m_file, ::getpid());
    std::string text = boost::json::serialize(m_known);
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
    if (!fd || ::write(fd.get(), text.data(), text.size()) !=
                   static_cast<ssize_t>(text.size())) {
      ::unlink(temp.c_str());
      return;
    }
    fd.reset();
    if (::rename(temp.c_str(), m_file.c_str()) != 0) {
      ::unlink(temp.c_str());
    }
  }

private:
  std::string m_file;
  boost::json::object m_known;
  bool m_changed = false;
};

Result<std::string> first_version_line(const std::string& program,
                                       bool required,
                                       VersionMemo& memo) {
  auto identity = binary_identity(program);
  if (identity) {
    if (auto known = memo.find(*identity)) {
      return *known;
    }
  }
  KTC_TRY_ASSIGN(std::string line, run_version(program, required));
  if (identity && line != "none") {
    memo.add(*identity, line);
  }
  return line;
}

Result<std::string> run_version(const std::string& program, bool required) {
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

Result<Toolchain> probe_toolchain(const ToolchainRequest& request,
                                  const std::string& memo_file) {
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
  VersionMemo memo(memo_file);
  KTC_TRY_ASSIGN(toolchain.compiler,
                 first_version_line(toolchain.compiler_program, true, memo));
  KTC_TRY_ASSIGN(toolchain.linker, first_version_line(linker, false, memo));
  KTC_TRY_ASSIGN(toolchain.pahole, first_version_line("pahole", false, memo));
  KTC_TRY_ASSIGN(toolchain.make, first_version_line("make", true, memo));
  memo.save();
  std::lock_guard guard(lock);
  probed.emplace(key, toolchain);
  return toolchain;
}

} // namespace ktc::build
