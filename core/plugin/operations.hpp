#pragma once

// What the host does through plugins: describe a source spec, strip a file
// with a policy. Each loads only the plugin it needs.

#include "plugin/host.hpp"

#include <boost/json/object.hpp>

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

  // The identity's "version", when the plugin gave one.
  std::optional<std::string> version() const;
  // {"spec", "plugin", "identity", "source", "key_parts"}.
  boost::json::object to_json() const;
};

// Resolves then describes `spec` through the plugin of its scheme.
Result<SourceDescription> describe_source(Registry& registry,
                                          std::string_view spec);

// Writes `output` from `input` through strip policy `policy`: the plugin's
// whole-file hook into a temporary file beside `output`, renamed into place.
// Policies that need the ELF engine are refused as unsupported for now.
Result<void> strip_file(Registry& registry,
                        std::string_view policy,
                        const std::string& input,
                        const std::string& output);

} // namespace ktc::plugin
