#pragma once

// What the host does through plugins: describe a source spec, strip a file
// with a policy. Each loads only the plugin it needs.

#include "cache/cache.hpp"
#include "plugin/host.hpp"

#include <boost/json/object.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ktc::plugin {

// The scheme of "<scheme>:<rest>", checked against the plugin name rules.
Result<std::string> spec_scheme(std::string_view spec);

struct SourceDescription {
  std::string spec;
  PluginRef plugin;
  // In the order the plugin set them; a null value is JSON null.
  std::vector<std::pair<std::string, std::optional<std::string>>> identity;
  // The metadata `source` object: "type" (the plugin's name) first, then
  // the payload as the plugin described it.
  boost::json::object source;
  std::vector<std::string> key_parts;
  // The registry's offline() when it was described: what the plugin's
  // later calls for this source (acquire, recheck) are told.
  bool offline = false;

  // The identity's "version", when the plugin gave one.
  std::optional<std::string> version() const;
  // {"spec", "plugin", "identity", "source", "key_parts"}.
  boost::json::object to_json() const;
  // What an entry's metadata records as `source_plugin`: {"spec", "name",
  // "version", "identity", "key_parts"}.
  boost::json::object source_plugin_json() const;
};

// Resolves then describes `spec` through the plugin of its scheme.
Result<SourceDescription> describe_source(Registry& registry,
                                          std::string_view spec);

// What the caller of a long plugin operation watches and can stop.
struct CallHooks {
  std::function<bool()> cancelled;
  std::function<void(std::string_view stage, uint64_t done, uint64_t total)>
      progress;
};

// Puts the described source's tree into `dest_dir` (an existing, empty
// directory) through its plugin, which sees the identity resolve()
// recorded. Returns the tree: `dest_dir`, a directory inside it the plugin
// named, or, for a source used in place, the tree itself. On failure the
// caller removes `dest_dir`.
Result<std::string> acquire_source(const SourceDescription& description,
                                   const std::string& dest_dir,
                                   const CallHooks& hooks);

// After a build in `tree`: whether it is still what resolve() saw.
// Sources without a recheck operation always are. Status::mismatch when
// the plugin says the tree changed.
Result<void> recheck_source(const SourceDescription& description,
                            const std::string& tree);

struct StripFileOptions {
  // fsync the output before it is renamed into place.
  bool sync = false;
  // When neither the policy nor the debug fallback gives an output that
  // passes the check (or the input is not ELF at all), report that the
  // input is to be kept whole (StripOutcome::kept_input, nothing written)
  // instead of failing: what a store wants, not an explicit strip.
  bool whole_file_fallback = false;
};

struct StripOutcome {
  std::string requested;
  // The policy whose output was kept: the requested one, "debug" when it
  // fell back, "none" when the file was kept whole.
  std::string policy;
  std::string policy_version;
  // False when the output is the whole input.
  bool stripped = false;
  // With whole_file_fallback: no output was written; use the input.
  bool kept_input = false;
  // Why the requested policy's output was not used.
  std::optional<std::string> fallback;
  uint64_t input_size = 0;
  uint64_t output_size = 0;
  // The input's GNU build-id (the output keeps the same one).
  std::optional<std::string> build_id;
};

// Writes `output` from the ELF file `input` through strip policy `policy`
// (loading only its plugin), checks that the output keeps every named
// symbol, .BTF, the build-id and IKCONFIG, and falls back to the debug
// policy, then (with whole_file_fallback) to keeping the input whole. The
// output is written beside `output` and renamed into place: a failure
// leaves none.
Result<StripOutcome> strip_file(Registry& registry,
                                std::string_view policy,
                                const std::string& input,
                                const std::string& output,
                                const StripFileOptions& options);

// A private directory for a stripped vmlinux on its way into the cache,
// removed with its file on destruction.
class StripScratch {
public:
  StripScratch() = default;
  StripScratch(const StripScratch&) = delete;
  StripScratch& operator=(const StripScratch&) = delete;
  ~StripScratch();

  // A path for the output inside a new directory under `base` ($TMPDIR or
  // /tmp when empty).
  Result<std::string> make(const std::string& base = {});

private:
  std::string m_dir;
  std::string m_file;
};

struct StoreStripOptions {
  // Empty: the default policy, "btf", whose plugin missing is no reason to
  // refuse the store (the file is kept whole, and that is recorded).
  std::optional<std::string> policy;
  bool no_strip = false;
  // Where the scratch directory goes (see StripScratch::make).
  std::string scratch_base;
};

// Prepares a store's vmlinux: refuses one built for another arch than the
// request's, strips it into `scratch` with the policy (falling back as
// strip_file() does, to the whole file at worst) and points the request at
// the result, recording how it was made in request.vmlinux_origin.
Result<void> strip_for_store(Registry& registry,
                             cache::StoreRequest& request,
                             const StoreStripOptions& options,
                             StripScratch& scratch);

// The engine as plugins see it (ktc_host_services.strip_engine).
extern const ktc_strip_engine k_strip_engine;

} // namespace ktc::plugin
