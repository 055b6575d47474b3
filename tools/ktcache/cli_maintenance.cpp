// The commands that look after the cache: clean, verify, locks.

#include "cli_commands.hpp"
#include "cli_output.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

namespace ktc::cli {

namespace {

// The worst of several outcomes decides the exit code: an integrity failure
// outranks everything, "unverifiable" counts only when nothing else failed.
int worst_exit_code(const std::vector<int>& codes) {
  for (int code : {k_exit_integrity, k_exit_environment, k_exit_busy,
                   k_exit_usage, k_exit_not_found, k_exit_unverifiable}) {
    if (std::find(codes.begin(), codes.end(), code) != codes.end()) {
      return code;
    }
  }
  return k_exit_ok;
}

const char* clean_action_name(int action) {
  switch (action) {
  case KTC_CLEAN_REMOVED:
    return "removed";
  case KTC_CLEAN_WOULD_REMOVE:
    return "would_remove";
  case KTC_CLEAN_SKIPPED_IN_USE:
    return "skipped_in_use";
  case KTC_CLEAN_FAILED:
    return "failed";
  case KTC_CLEAN_NOT_FOUND:
    return "not_found";
  default:
    return "unknown";
  }
}

std::string clean_item_line(const ktc_clean_item& item) {
  std::string size = format_size(item.bytes);
  if (item.corrupt) {
    size += ", corrupt";
  }
  std::string message = item.message ? one_line(item.message) : "";
  switch (item.action) {
  case KTC_CLEAN_REMOVED:
    return fmt::format("removed {} ({})", item.key, size);
  case KTC_CLEAN_WOULD_REMOVE:
    return fmt::format("would remove {} ({})", item.key, size);
  case KTC_CLEAN_SKIPPED_IN_USE:
    if (message.empty()) {
      return fmt::format("skipped {}: in use", item.key);
    }
    return fmt::format("skipped {}: in use ({})", item.key, message);
  case KTC_CLEAN_FAILED:
    return fmt::format("failed {}: {}", item.key,
                       message.empty() ? "unknown error" : message);
  case KTC_CLEAN_NOT_FOUND:
    return fmt::format("not found {}", item.key);
  default:
    return fmt::format("{} {}", clean_action_name(item.action), item.key);
  }
}

struct CleanTotals {
  size_t removed = 0;
  uint64_t removed_bytes = 0;
  size_t skipped = 0;
  size_t failed = 0;
  size_t not_found = 0;
};

std::string clean_summary(const CleanTotals& totals, bool dry_run) {
  if (totals.removed + totals.skipped + totals.failed + totals.not_found == 0) {
    return "nothing to clean";
  }
  std::string summary =
      dry_run
          ? fmt::format("would remove {}, freeing {}",
                        count_entries(totals.removed),
                        format_size(totals.removed_bytes))
          : fmt::format("removed {}, freed {}", count_entries(totals.removed),
                        format_size(totals.removed_bytes));
  if (totals.skipped > 0) {
    summary += fmt::format("; {} skipped (in use)", totals.skipped);
  }
  if (totals.failed > 0) {
    summary += fmt::format("; {} failed", totals.failed);
  }
  if (totals.not_found > 0) {
    summary += fmt::format("; {} not found", totals.not_found);
  }
  return summary;
}

ktc_clean_options clean_request(const CleanOptions& options,
                                std::vector<const char*>& key_ptrs) {
  int selectors = options.keep.has_value() + options.corrupt_only +
                  options.all + !options.keys.empty();
  if (selectors == 0) {
    throw CliError(k_exit_usage,
                   "clean needs a selector: --keep N, --corrupt-only, --all "
                   "or one or more KEYs (add --dry-run to preview)");
  }
  if (selectors > 1) {
    throw CliError(k_exit_usage, "clean takes exactly one selector: --keep N, "
                                 "--corrupt-only, --all or KEYs");
  }
  ktc_clean_options request = KTC_CLEAN_OPTIONS_INIT;
  if (options.dry_run) {
    request.flags |= KTC_CLEAN_DRY_RUN;
  }
  if (options.keep) {
    request.mode = KTC_CLEAN_KEEP;
    request.keep = *options.keep;
  } else if (options.corrupt_only) {
    request.mode = KTC_CLEAN_CORRUPT_ONLY;
  } else if (options.all) {
    request.mode = KTC_CLEAN_ALL;
  } else {
    for (const auto& key : options.keys) {
      require_valid_key(key);
      key_ptrs.push_back(key.c_str());
    }
    request.mode = KTC_CLEAN_KEYS;
    request.keys = key_ptrs.data();
    request.key_count = key_ptrs.size();
  }
  return request;
}

struct VerifyResult {
  std::string key;
  const char* result = "ok";
  std::string message;
  int exit_code = k_exit_ok;
};

VerifyResult verify_one(ktc_cache* cache, const std::string& key) {
  VerifyResult outcome;
  outcome.key = key;
  int status = ktc_verify(cache, key.c_str());
  outcome.exit_code = exit_code_for(status);
  if (status != KTC_OK) {
    outcome.message = one_line(ktc_error_message());
  }
  switch (status) {
  case KTC_OK:
    outcome.result = "ok";
    break;
  case KTC_E_MISMATCH:
    outcome.result = "mismatch";
    break;
  case KTC_E_UNVERIFIABLE:
    outcome.result = "unverifiable";
    break;
  case KTC_E_CORRUPT:
    outcome.result = "corrupt";
    break;
  case KTC_E_NOTFOUND:
    outcome.result = "missing";
    break;
  case KTC_E_LOCKED:
    outcome.result = "busy";
    break;
  default:
    outcome.result = "error";
    break;
  }
  return outcome;
}

std::string verify_line(const VerifyResult& outcome) {
  std::string_view result = outcome.result;
  if (result == "ok" || result == "missing") {
    return fmt::format("{} {}", result, outcome.key);
  }
  if (result == "mismatch") {
    return fmt::format("MISMATCH {}: {}", outcome.key, outcome.message);
  }
  return fmt::format("{} {}: {}", result, outcome.key, outcome.message);
}

std::vector<std::string> valid_keys(ktc_cache* cache) {
  ktc_list* raw = nullptr;
  check(ktc_list_entries(&raw, cache));
  ListPtr list(raw);
  std::vector<std::string> keys;
  for (size_t i = 0; i < ktc_list_count(list.get()); ++i) {
    ktc_entry_info info = entry_info(ktc_list_at(list.get(), i));
    if (info.state == KTC_ENTRY_VALID) {
      keys.emplace_back(info.key);
    }
  }
  return keys;
}

std::string holder_text(const ktc_lock_holder& holder) {
  return fmt::format("pid={} ({}) cmd={}", holder.pid,
                     holder.exclusive ? "exclusive" : "shared",
                     holder.cmdline ? one_line(holder.cmdline) : "");
}

} // namespace

int run_clean(ktc_cache* cache, const CleanOptions& options) {
  std::vector<const char*> key_ptrs;
  ktc_clean_options request = clean_request(options, key_ptrs);
  ktc_clean_report* raw = nullptr;
  check(ktc_clean(&raw, cache, &request));
  CleanReportPtr report(raw);

  boost::json::array items;
  CleanTotals totals;
  std::vector<int> codes;
  for (size_t i = 0; i < ktc_clean_report_count(report.get()); ++i) {
    ktc_clean_item item = KTC_CLEAN_ITEM_INIT;
    check(ktc_clean_report_get(report.get(), i, &item));
    switch (item.action) {
    case KTC_CLEAN_REMOVED:
    case KTC_CLEAN_WOULD_REMOVE:
      ++totals.removed;
      totals.removed_bytes += item.bytes;
      break;
    case KTC_CLEAN_SKIPPED_IN_USE:
      ++totals.skipped;
      codes.push_back(k_exit_busy);
      break;
    case KTC_CLEAN_NOT_FOUND:
      ++totals.not_found;
      codes.push_back(k_exit_not_found);
      break;
    default:
      ++totals.failed;
      codes.push_back(k_exit_environment);
      break;
    }
    if (options.json) {
      boost::json::object row;
      row["key"] = item.key;
      row["action"] = clean_action_name(item.action);
      row["corrupt"] = item.corrupt != 0;
      row["bytes"] = item.bytes;
      row["message"] = item.message ? boost::json::value(one_line(item.message))
                                    : boost::json::value(nullptr);
      items.push_back(std::move(row));
    } else {
      fmt::print("{}\n", clean_item_line(item));
    }
  }
  if (options.json) {
    print_json(items);
  } else {
    fmt::print("{}\n", clean_summary(totals, options.dry_run));
  }
  return worst_exit_code(codes);
}

int run_verify(ktc_cache* cache, const VerifyOptions& options) {
  for (const auto& key : options.keys) {
    require_valid_key(key);
  }
  std::vector<std::string> keys = options.keys;
  if (keys.empty()) {
    keys = valid_keys(cache);
    if (keys.empty() && !options.json) {
      fmt::print(stderr, "no cached kernels to verify\n");
    }
  }
  boost::json::array results;
  std::vector<int> codes;
  for (const auto& key : keys) {
    VerifyResult outcome = verify_one(cache, key);
    codes.push_back(outcome.exit_code);
    if (options.json) {
      boost::json::object row;
      row["key"] = outcome.key;
      row["result"] = outcome.result;
      row["message"] = outcome.message.empty()
                           ? boost::json::value(nullptr)
                           : boost::json::value(outcome.message);
      results.push_back(std::move(row));
    } else {
      fmt::print("{}\n", verify_line(outcome));
    }
  }
  if (options.json) {
    print_json(results);
  }
  return worst_exit_code(codes);
}

int run_locks(ktc_cache* cache, const LocksOptions& options) {
  ktc_lock_list* raw = nullptr;
  check(ktc_locks(&raw, cache));
  LockListPtr locks(raw);
  size_t count = ktc_lock_list_count(locks.get());

  boost::json::array rows;
  Table table({"NAME", "PATH", "HOLDERS"});
  for (size_t i = 0; i < count; ++i) {
    ktc_lock_info info = KTC_LOCK_INFO_INIT;
    check(ktc_lock_list_get(locks.get(), i, &info));
    boost::json::array holders;
    std::vector<std::string> holder_lines;
    for (size_t h = 0; h < info.holder_count; ++h) {
      ktc_lock_holder holder = KTC_LOCK_HOLDER_INIT;
      check(ktc_lock_list_holder(locks.get(), i, h, &holder));
      holders.push_back(boost::json::object{
          {"pid", holder.pid},
          {"exclusive", holder.exclusive != 0},
          {"cmdline", holder.cmdline ? holder.cmdline : ""}});
      holder_lines.push_back(holder_text(holder));
    }
    rows.push_back(boost::json::object{{"name", info.name},
                                       {"path", info.path},
                                       {"holders", std::move(holders)}});
    if (holder_lines.empty()) {
      holder_lines.emplace_back("(none)");
    }
    table.add_row({info.name, info.path, holder_lines[0]});
    for (size_t h = 1; h < holder_lines.size(); ++h) {
      table.add_row({"", "", holder_lines[h]});
    }
  }
  if (options.json) {
    print_json(rows);
  } else if (count == 0) {
    fmt::print("(none)\n");
  } else {
    table.print();
  }
  return k_exit_ok;
}

} // namespace ktc::cli
