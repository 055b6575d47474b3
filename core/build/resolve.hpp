#pragma once

// ktc_resolve(): the entry a kernel identifier names, looked up, built on a
// miss, or discovered (the newest usable entry), as harnesses ask for it.

#include "build/pipeline.hpp"
#include "cache/cache.hpp"
#include "plugin/host.hpp"
#include "util/result.hpp"

#include <boost/json/object.hpp>

#include <optional>
#include <string>

namespace ktc::build {

struct ResolveRequest {
  // A kernel identifier; empty only with `newest`.
  std::string id;
  bool no_build = false;
  bool newest = false;
  bool lease = false;
  // newest: the arch entries must have; empty: the build's, else the
  // host's.
  std::string arch;
  // newest: entries whose recorded kconfig hash differs are skipped.
  std::optional<std::string> kconfig_hash;
  // How a miss is built; its spec is replaced by `id`.
  BuildRequest build;
};

struct ResolveReport {
  std::string id;
  std::string kind;
  std::string key;
  // "hit", "built", "waited", "built_not_stored" or "newest".
  std::string outcome;
  std::optional<cache::Entry> entry;
  std::optional<boost::json::object> build;

  boost::json::object to_json() const;
};

Result<ResolveReport> resolve(cache::Cache& cache,
                              plugin::Registry& registry,
                              const ResolveRequest& request);

} // namespace ktc::build
