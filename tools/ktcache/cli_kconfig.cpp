// The kconfig command: the kernel configuration of a vmlinux or an entry.

#include "cli_commands.hpp"
#include "cli_output.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <sys/stat.h>

#include <cstdio>
#include <string_view>

namespace ktc::cli {
namespace {

// The library takes an argument with a '/' for a file; a missing one is
// bad input (exit 2), unlike a key without an entry (exit 1).
bool is_missing_file(const std::string& argument) {
  struct stat st;
  return argument.find('/') != std::string::npos &&
         ::stat(argument.c_str(), &st) != 0;
}

std::string option_name(const std::string& name) {
  return std::string_view(name).starts_with("CONFIG_") ? name
                                                       : "CONFIG_" + name;
}

} // namespace

int run_kconfig(ktc_cache* cache, const KconfigOptions& options) {
  char* raw_text = nullptr;
  char* raw_path = nullptr;
  int source = KTC_KCONFIG_FROM_IKCONFIG;
  int status = ktc_kconfig_read(&raw_text, &source, &raw_path, cache,
                                options.file_or_key.c_str());
  if (status == KTC_E_NOTFOUND && is_missing_file(options.file_or_key)) {
    throw CliError(k_exit_usage, one_line(ktc_error_message()));
  }
  check(status);
  LibraryString text(raw_text);
  LibraryString path(raw_path);
  std::string_view source_name =
      source == KTC_KCONFIG_FROM_CONFIG_FILE ? "config" : "ikconfig";

  if (!options.get) {
    if (options.json) {
      boost::json::object result;
      result["source"] = source_name;
      result["path"] = path.get();
      result["text"] = text.get();
      print_json(result);
    } else {
      std::string_view config = text.get();
      fmt::print("{}{}", config,
                 config.empty() || config.ends_with('\n') ? "" : "\n");
    }
    return k_exit_ok;
  }

  char* raw_value = nullptr;
  int value_status =
      ktc_kconfig_value(&raw_value, text.get(), options.get->c_str());
  if (value_status != KTC_E_NOTFOUND) {
    check(value_status);
  }
  LibraryString value(raw_value);
  std::string absent = value ? std::string() : one_line(ktc_error_message());
  if (options.json) {
    boost::json::object result;
    result["source"] = source_name;
    result["path"] = path.get();
    result["name"] = option_name(*options.get);
    if (value) {
      result["value"] = value.get();
    } else {
      result["value"] = nullptr;
    }
    print_json(result);
  } else if (value) {
    fmt::print("{}\n", value.get());
  }
  if (!value) {
    fmt::print(stderr, "ktcache: {}: {}\n", path.get(), absent);
    return k_exit_not_found;
  }
  return k_exit_ok;
}

CLI::App* add_kconfig(CLI::App& app, KconfigOptions& options) {
  auto* command = app.add_subcommand(
      "kconfig", "Print the kernel configuration of a vmlinux or an entry");
  command
      ->add_option("FILE-OR-KEY", options.file_or_key,
                   "A vmlinux file, or the key of a cached kernel")
      ->required();
  command
      ->add_option_function<std::string>(
          "--get", [&options](const std::string& name) { options.get = name; },
          "Print the value of one option (CONFIG_HZ or HZ) alone")
      ->type_name("CONFIG_NAME");
  command->add_flag("--json", options.json,
                    "Print one JSON document (see below)");
  command->footer(
      "FILE-OR-KEY is a file when it contains a '/' or names an existing "
      "file,\nelse a cache key. A file's configuration is the one "
      "CONFIG_IKCONFIG\nembeds in it; an entry's is its vmlinux's, else "
      "the entry's stored\n.config. Prints the whole .config, or with --get "
      "the option's value as\nwritten (quotes kept). Exit: 1 when the option "
      "is absent or not set, or\nthere is no configuration (no "
      "CONFIG_IKCONFIG and no stored .config);\n2 when FILE does not exist "
      "or is not ELF; 3 when the embedded\nconfiguration is corrupt.\n\n"
      "--json prints {source (\"ikconfig\" or \"config\"), path, text}; with "
      "--get,\n{source, path, name (CONFIG_...), value (a string, or null "
      "when the\noption is absent or not set)}.");
  return command;
}

} // namespace ktc::cli
