#include "cli_capi.hpp"

#include "cli_output.hpp"

namespace ktc::cli {

int exit_code_for(int status) {
  switch (status) {
  case KTC_OK:
    return k_exit_ok;
  case KTC_E_NOTFOUND:
    return k_exit_not_found;
  case KTC_E_INVALID:
  case KTC_E_VERSION:
    return k_exit_usage;
  case KTC_E_CORRUPT:
  case KTC_E_MISMATCH:
    return k_exit_integrity;
  case KTC_E_UNVERIFIABLE:
    return k_exit_unverifiable;
  case KTC_E_LOCKED:
    return k_exit_busy;
  case KTC_E_PLUGIN:
    return k_exit_plugin;
  case KTC_E_BUILD:
    return k_exit_build;
  case KTC_E_NETWORK:
    return k_exit_network;
  case KTC_E_CANCELLED:
    return k_exit_cancelled;
  default:
    return k_exit_environment;
  }
}

void check(int status) {
  if (status != KTC_OK) {
    throw CliError(exit_code_for(status), one_line(ktc_error_message()));
  }
}

ktc_entry_info entry_info(const ktc_entry* entry) {
  ktc_entry_info info = KTC_ENTRY_INFO_INIT;
  check(ktc_entry_get_info(entry, &info));
  return info;
}

} // namespace ktc::cli
