// The plugin commands: plugins, source describe, strip.

#include "cli_commands.hpp"
#include "cli_output.hpp"
#include "cli_progress.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>

namespace ktc::cli {
namespace {

std::string_view state_name(int32_t state) {
  switch (state) {
  case KTC_PLUGIN_LOADED:
    return "loaded";
  case KTC_PLUGIN_SHADOWED:
    return "shadowed";
  default:
    return "rejected";
  }
}

boost::json::value text_or_null(const char* text) {
  if (text == nullptr) {
    return nullptr;
  }
  return boost::json::string(text);
}

std::string display(const boost::json::value& value) {
  if (value.is_string()) {
    return std::string(value.as_string());
  }
  return boost::json::serialize(value);
}

} // namespace

int run_plugins(ktc_cache* cache, const PluginsOptions& options) {
  ktc_plugin_list* raw = nullptr;
  check(ktc_plugins_list(&raw, cache, options.all ? KTC_PLUGINS_ALL : 0));
  PluginListPtr list(raw);
  size_t count = ktc_plugin_list_count(list.get());
  std::vector<ktc_plugin_record> records;
  for (size_t index = 0; index < count; ++index) {
    ktc_plugin_record record = KTC_PLUGIN_RECORD_INIT;
    check(ktc_plugin_list_get(list.get(), index, &record));
    records.push_back(record);
  }

  if (options.json) {
    boost::json::array rows;
    for (const auto& record : records) {
      boost::json::object row;
      row["name"] = record.name;
      row["kind"] = record.kind;
      row["version"] = text_or_null(record.version);
      row["file"] = record.file;
      row["abi_major"] = record.abi_major;
      row["abi_minor"] = record.abi_minor;
      row["state"] = state_name(record.state);
      row["description"] = text_or_null(record.description);
      row["reason"] = text_or_null(record.reason);
      rows.emplace_back(std::move(row));
    }
    print_json(rows);
    return k_exit_ok;
  }

  if (records.empty()) {
    fmt::print(stderr, "no plugins found (installed directory: {})\n",
               ktc_plugin_default_dir());
    return k_exit_ok;
  }
  Table table({"NAME", "KIND", "VERSION", "ABI", "FILE"});
  std::vector<const ktc_plugin_record*> problems;
  for (const auto& record : records) {
    if (record.state != KTC_PLUGIN_LOADED) {
      problems.push_back(&record);
      continue;
    }
    table.add_row({record.name, record.kind, record.version,
                   fmt::format("{}.{}", record.abi_major, record.abi_minor),
                   record.file});
  }
  table.print();
  for (const auto* record : problems) {
    fmt::print("{} {}: {}\n", state_name(record->state), record->file,
               record->reason != nullptr ? record->reason : "");
  }
  return k_exit_ok;
}

int run_source_fetch(ktc_cache* cache, const SourceFetchOptions& options) {
  CancelOnSignals cancel_on_signals;
  ProgressView progress(options.quiet);
  ktc_hooks hooks = progress.hooks();
  char* raw = nullptr;
  int status = ktc_source_fetch(&raw, cache, options.spec.c_str(),
                                options.directory.c_str(), &hooks);
  progress.finish();
  check(status);
  LibraryString text(raw);
  if (options.json) {
    fmt::print("{}\n", text.get());
    return k_exit_ok;
  }
  boost::json::object result = boost::json::parse(text.get()).as_object();
  fmt::print("{}\n", display(result.at("tree")));
  return k_exit_ok;
}

int run_source_describe(ktc_cache* cache,
                        const SourceDescribeOptions& options) {
  char* raw = nullptr;
  check(ktc_source_describe(&raw, cache, options.spec.c_str()));
  LibraryString text(raw);
  if (options.json) {
    fmt::print("{}\n", text.get());
    return k_exit_ok;
  }
  boost::json::object description = boost::json::parse(text.get()).as_object();
  const auto& plugin = description.at("plugin").as_object();
  fmt::print("spec:      {}\n", display(description.at("spec")));
  fmt::print("plugin:    {} {} ({})\n", display(plugin.at("name")),
             display(plugin.at("version")), display(plugin.at("file")));
  fmt::print("identity:\n");
  for (const auto& field : description.at("identity").as_object()) {
    fmt::print("  {}: {}\n", std::string_view(field.key()),
               display(field.value()));
  }
  fmt::print("source:\n");
  for (const auto& field : description.at("source").as_object()) {
    fmt::print("  {}: {}\n", std::string_view(field.key()),
               display(field.value()));
  }
  std::string parts;
  for (const auto& part : description.at("key_parts").as_array()) {
    if (!parts.empty()) {
      parts += ' ';
    }
    parts += display(part);
  }
  fmt::print("key parts: {}\n", parts);
  return k_exit_ok;
}

int run_strip(ktc_cache* cache, const StripOptions& options) {
  ktc_strip_options request = KTC_STRIP_OPTIONS_INIT;
  request.policy = options.policy ? options.policy->c_str() : nullptr;
  auto started = std::chrono::steady_clock::now();
  char* raw = nullptr;
  int status = ktc_strip(cache, options.input.c_str(), options.output.c_str(),
                         &request, &raw);
  if (status == KTC_E_NOTFOUND) {
    // A missing input file is bad input.
    throw CliError(k_exit_usage, one_line(ktc_error_message()));
  }
  check(status);
  LibraryString text(raw);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  boost::json::object report = boost::json::parse(text.get()).as_object();
  if (options.json) {
    report["input"] = options.input;
    report["output"] = options.output;
    report["seconds"] = seconds;
    print_json(report);
    return k_exit_ok;
  }
  if (!report.at("fallback").is_null()) {
    fmt::print(stderr, "ktcache: warning: policy {} was not used: {}\n",
               display(report.at("requested")), display(report.at("fallback")));
  }
  fmt::print("{} -> {}: {} -> {} with policy {} in {:.3f} s\n", options.input,
             options.output,
             format_size(report.at("input_bytes").to_number<uint64_t>()),
             format_size(report.at("output_bytes").to_number<uint64_t>()),
             display(report.at("policy")), seconds);
  return k_exit_ok;
}

} // namespace ktc::cli
