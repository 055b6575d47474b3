#include "plugin/operations.hpp"

#include "util/fd.hpp"
#include "util/log.hpp"

#include <boost/json/array.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>

namespace ktc::plugin {
namespace {

ktc_plugin_call new_call(const Plugin& plugin) {
  ktc_plugin_call call;
  call.plugin_name = plugin.name();
  return call;
}

std::string temp_name_beside(const std::string& output) {
  static std::atomic<unsigned> counter{0};
  std::random_device random;
  return fmt::format("{}.ktcache-tmp-{:08x}{:x}-{}", output, random(),
                     counter.fetch_add(1), ::getpid());
}

Result<void> sync_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    return errno_error(errno, path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return errno_error(errno, path);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Status::plugin,
                      "{}: the policy did not write a regular "
                      "file",
                      path);
  }
  if (::fsync(fd.get()) != 0) {
    return errno_error(errno, path);
  }
  return {};
}

} // namespace

Result<std::string> spec_scheme(std::string_view spec) {
  auto colon = spec.find(':');
  if (colon == std::string_view::npos) {
    return make_error(Status::invalid,
                      "source spec '{}': no scheme (expected <scheme>:<rest>, "
                      "for example local:/src/linux)",
                      spec);
  }
  std::string_view scheme = spec.substr(0, colon);
  if (!valid_name(scheme)) {
    return make_error(Status::invalid,
                      "source spec '{}': scheme '{}' is not well formed "
                      "(expected {})",
                      spec, scheme, KTC_PLUGIN_NAME_PATTERN);
  }
  return std::string(scheme);
}

std::optional<std::string> SourceDescription::version() const {
  for (const auto& [name, value] : identity) {
    if (name == "version") {
      return value;
    }
  }
  return std::nullopt;
}

boost::json::object SourceDescription::to_json() const {
  boost::json::object plugin_json;
  plugin_json["name"] = plugin->name();
  plugin_json["version"] = plugin->version();
  plugin_json["file"] = plugin->path();
  plugin_json["abi_major"] = plugin->abi_major();
  plugin_json["abi_minor"] = plugin->abi_minor();
  boost::json::object identity_json;
  for (const auto& [name, value] : identity) {
    if (value) {
      identity_json[name] = *value;
    } else {
      identity_json[name] = nullptr;
    }
  }
  boost::json::array parts;
  for (const auto& part : key_parts) {
    parts.emplace_back(part);
  }
  boost::json::object result;
  result["spec"] = spec;
  result["plugin"] = std::move(plugin_json);
  result["identity"] = std::move(identity_json);
  result["source"] = source;
  result["key_parts"] = std::move(parts);
  return result;
}

Result<SourceDescription> describe_source(Registry& registry,
                                          std::string_view spec) {
  KTC_TRY_ASSIGN(std::string scheme, spec_scheme(spec));
  KTC_TRY_ASSIGN(PluginRef plugin, registry.find(Kind::source, scheme));
  const ktc_source_ops& ops = plugin->source_ops();
  std::string spec_text(spec);
  std::string subject = fmt::format("source {}", spec);
  ktc_plugin_call call = new_call(*plugin);

  if (ops.claim != nullptr) {
    int claimed = ops.claim(plugin->state(), &call, spec_text.c_str());
    if (claimed == KTC_PLUGIN_NOT_MINE) {
      return make_error(Status::plugin,
                        "{}: plugin {} ({}) does not accept this spec{}",
                        subject, plugin->name(), plugin->path(),
                        call.error ? ": " + *call.error : "");
    }
    if (claimed != KTC_PLUGIN_OK) {
      return call_error(*plugin, call, claimed, subject);
    }
  }
  int status = ops.resolve(plugin->state(), &call, spec_text.c_str());
  if (status != KTC_PLUGIN_OK) {
    return call_error(*plugin, call, status, subject);
  }
  status = ops.describe(plugin->state(), &call, spec_text.c_str());
  if (status != KTC_PLUGIN_OK) {
    return call_error(*plugin, call, status, subject);
  }
  if (call.key_parts.empty()) {
    return make_error(Status::plugin,
                      "{}: plugin {} ({}) described no cache key part", subject,
                      plugin->name(), plugin->path());
  }

  SourceDescription description;
  description.spec = spec_text;
  description.identity = std::move(call.identity);
  description.source["type"] = plugin->name();
  for (auto& field : call.payload) {
    description.source[field.key()] = std::move(field.value());
  }
  description.key_parts = std::move(call.key_parts);
  description.plugin = std::move(plugin);
  return description;
}

Result<void> strip_file(Registry& registry,
                        std::string_view policy,
                        const std::string& input,
                        const std::string& output) {
  struct stat st;
  if (::stat(input.c_str(), &st) != 0) {
    return errno_error(errno, input);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Status::invalid, "{}: not a regular file", input);
  }
  if (output.empty()) {
    return make_error(Status::invalid, "no output path given");
  }
  KTC_TRY_ASSIGN(PluginRef plugin, registry.find(Kind::strip, policy));
  const ktc_strip_ops& ops = plugin->strip_ops();
  std::string subject = fmt::format("strip {} with policy {}", input, policy);
  if (ops.whole_file == nullptr) {
    return make_error(Status::unsupported,
                      "{}: the policy decides per section and needs the ELF "
                      "strip engine, which this libktcache does not have yet",
                      subject);
  }
  std::string temp = temp_name_beside(output);
  ktc_plugin_call call = new_call(*plugin);
  int status =
      ops.whole_file(plugin->state(), &call, input.c_str(), temp.c_str());
  auto discard = [&] { ::unlink(temp.c_str()); };
  if (status == KTC_PLUGIN_NOT_MINE) {
    discard();
    return make_error(Status::unsupported,
                      "{}: the policy handed the file to the ELF strip "
                      "engine, which this libktcache does not have yet",
                      subject);
  }
  if (status != KTC_PLUGIN_OK) {
    discard();
    return call_error(*plugin, call, status, subject);
  }
  if (auto synced = sync_file(temp); !synced) {
    discard();
    return synced;
  }
  if (::rename(temp.c_str(), output.c_str()) != 0) {
    int error_number = errno;
    discard();
    return errno_error(error_number, output);
  }
  KTC_LOG(debug, "Stripped {} to {} with policy {} {}", input, output,
          plugin->name(), plugin->version());
  return {};
}

} // namespace ktc::plugin
