#pragma once

// The build pipeline behind ktc_ensure(): a kernel named by a source spec,
// from the cache when it is there, else acquired, configured, built,
// stripped and stored, once however many processes ask at the same time.

#include "build/kernel_id.hpp"
#include "cache/cache.hpp"
#include "plugin/operations.hpp"
#include "util/result.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace ktc::build {

struct BuildRequest {
  // A single-kernel identifier (source_spec_of()).
  std::string spec;
  // Empty: the host's.
  std::string arch;
  // A make target, or a file path (anything with a '/').
  std::string base_config = "defconfig";
  std::vector<std::string> kconfig_files;
  std::vector<std::string> kconfig_settings;
  std::vector<std::string> make_args;
  // Zero: the CPUs this process may use.
  unsigned jobs = 0;
  std::optional<std::string> cross_compile;
  std::optional<std::string> cc;
  std::optional<std::string> llvm;
  std::optional<std::string> strip_policy;
  bool no_strip = false;
  bool force = false;
  bool store_dirty = false;
  bool keep_tree = false;
  // A miss is Status::not_found instead of a build.
  bool no_build = false;
  std::chrono::milliseconds wait_timeout = std::chrono::hours(4);
  plugin::CallHooks hooks;
};

enum class Outcome { hit, built, waited, built_not_stored };
std::string_view to_string(Outcome outcome);

struct BuildReport {
  std::string spec;
  std::string key;
  Outcome outcome = Outcome::hit;
  std::optional<cache::Entry> entry;
  // A build that was not stored leaves its image here (in the tree).
  std::optional<std::string> image;
  std::optional<std::string> tree;
  std::optional<std::string> log;
  std::vector<std::string> dropped_kconfig;
  boost::json::object inputs;
  boost::json::object seconds;

  boost::json::object to_json() const;
};

// The source spec a single-kernel identifier names (see kernel_id.hpp): a
// version is the kernel.org tarball ("tarball:6.12.3"), git+URL#REF is
// "git:URL@REF", a directory is "local:<absolute path>", a plugin spec is
// itself. A range, a key or a file is Status::invalid.
Result<std::string> source_spec_of(std::string_view text);
// The same for an identifier already parsed.
Result<std::string> source_spec_of(const KernelId& id);

Result<BuildReport> ensure(cache::Cache& cache,
                           plugin::Registry& registry,
                           const BuildRequest& request);

} // namespace ktc::build
