#include "plugin/operations.hpp"

#include "elf/arch.hpp"
#include "elf/elf_file.hpp"
#include "elf/strip.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

#include <boost/json/array.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
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

boost::json::object SourceDescription::source_plugin_json() const {
  boost::json::object described = to_json();
  boost::json::object record;
  record["spec"] = spec;
  record["name"] = plugin->name();
  record["version"] = plugin->version();
  record["identity"] = std::move(described["identity"]);
  record["key_parts"] = std::move(described["key_parts"]);
  return record;
}

Result<SourceDescription> describe_source(Registry& registry,
                                          std::string_view spec) {
  KTC_TRY_ASSIGN(std::string scheme, spec_scheme(spec));
  KTC_TRY_ASSIGN(PluginRef plugin, registry.find(Kind::source, scheme));
  const ktc_source_ops& ops = plugin->source_ops();
  std::string spec_text(spec);
  std::string subject = fmt::format("source {}", spec);
  ktc_plugin_call call = new_call(*plugin);
  call.offline = registry.offline();

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
  description.offline = call.offline;
  description.plugin = std::move(plugin);
  return description;
}

namespace {

ktc_plugin_call resumed_call(const SourceDescription& description) {
  ktc_plugin_call call = new_call(*description.plugin);
  call.identity = description.identity;
  call.offline = description.offline;
  return call;
}

bool path_within(std::string_view path, std::string_view directory) {
  if (!path.starts_with(directory)) {
    return false;
  }
  return path.size() == directory.size() || path[directory.size()] == '/' ||
         directory.ends_with('/');
}

} // namespace

Result<std::string> acquire_source(const SourceDescription& description,
                                   const std::string& dest_dir,
                                   const CallHooks& hooks) {
  const Plugin& plugin = *description.plugin;
  std::string subject = fmt::format("source {}", description.spec);
  ktc_plugin_call call = resumed_call(description);
  call.cancelled = hooks.cancelled;
  call.progress = hooks.progress;
  int status = plugin.source_ops().acquire(
      plugin.state(), &call, description.spec.c_str(), dest_dir.c_str());
  if (status != KTC_PLUGIN_OK) {
    return call_error(plugin, call, status, subject);
  }
  bool in_place = (plugin.source_ops().flags & KTC_SOURCE_IN_PLACE) != 0;
  if (!call.tree) {
    if (in_place) {
      return make_error(Status::plugin,
                        "{}: plugin {} ({}) builds in place but named no tree",
                        subject, plugin.name(), plugin.path());
    }
    return dest_dir;
  }
  if (!in_place && !path_within(*call.tree, dest_dir)) {
    return make_error(Status::plugin,
                      "{}: plugin {} ({}) named the tree {}, outside the "
                      "directory {} it was given",
                      subject, plugin.name(), plugin.path(), *call.tree,
                      dest_dir);
  }
  struct stat st;
  if (::stat(call.tree->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return make_error(Status::plugin,
                      "{}: plugin {} ({}) named the tree {}, which is not a "
                      "directory",
                      subject, plugin.name(), plugin.path(), *call.tree);
  }
  return *call.tree;
}

Result<void> recheck_source(const SourceDescription& description,
                            const std::string& tree) {
  const Plugin& plugin = *description.plugin;
  if (plugin.source_ops().recheck == nullptr) {
    return {};
  }
  ktc_plugin_call call = resumed_call(description);
  int status = plugin.source_ops().recheck(
      plugin.state(), &call, description.spec.c_str(), tree.c_str());
  if (status == KTC_PLUGIN_OK) {
    return {};
  }
  if (status == KTC_PLUGIN_E_CHANGED) {
    return make_error(Status::mismatch, "source {}: {}", description.spec,
                      call.error.value_or("the tree changed during the build"));
  }
  return call_error(plugin, call, status,
                    fmt::format("source {}", description.spec));
}

namespace {

Result<elf::Decision> to_decision(int value, const Plugin& plugin) {
  switch (value) {
  case KTC_STRIP_KEEP:
    return elf::Decision::keep;
  case KTC_STRIP_HEADER_ONLY:
    return elf::Decision::header_only;
  case KTC_STRIP_DROP:
    return elf::Decision::drop;
  default:
    return make_error(Status::plugin,
                      "strip policy {} ({}) returned the unknown decision {}",
                      plugin.name(), plugin.path(), value);
  }
}

ktc_strip_section section_view(const elf::Section& section, uint32_t roles) {
  ktc_strip_section view{};
  view.struct_size = sizeof view;
  view.index = static_cast<uint32_t>(section.index);
  // Section names point into the mapped, NUL-terminated name table.
  view.name = section.name.data();
  view.type = section.type;
  view.flags = section.flags;
  view.size = section.size;
  view.roles = roles;
  return view;
}

static_assert(static_cast<int>(elf::Decision::keep) == KTC_STRIP_KEEP);
static_assert(static_cast<int>(elf::Decision::header_only) ==
              KTC_STRIP_HEADER_ONLY);
static_assert(static_cast<int>(elf::Decision::drop) == KTC_STRIP_DROP);
constexpr bool same_role(elf::Role engine, uint32_t abi) {
  return static_cast<uint32_t>(engine) == abi;
}
static_assert(same_role(elf::role_structural, KTC_STRIP_ROLE_STRUCTURAL) &&
              same_role(elf::role_symbols, KTC_STRIP_ROLE_SYMBOLS) &&
              same_role(elf::role_btf, KTC_STRIP_ROLE_BTF) &&
              same_role(elf::role_ikconfig, KTC_STRIP_ROLE_IKCONFIG) &&
              same_role(elf::role_note, KTC_STRIP_ROLE_NOTE) &&
              same_role(elf::role_debug, KTC_STRIP_ROLE_DEBUG) &&
              same_role(elf::role_comment, KTC_STRIP_ROLE_COMMENT) &&
              same_role(elf::role_reloc, KTC_STRIP_ROLE_RELOC) &&
              same_role(elf::role_alloc, KTC_STRIP_ROLE_ALLOC) &&
              same_role(elf::role_code, KTC_STRIP_ROLE_CODE) &&
              same_role(elf::role_btf_ext, KTC_STRIP_ROLE_BTF_EXT));

// Strips with the engine and checks the result: the one way any policy's
// output is accepted.
// Accepts `output` only when it keeps what a harness reads from `input`;
// otherwise removes it.
Result<void> check_written(const elf::ElfFile& input,
                           const std::string& output) {
  auto written = elf::ElfFile::open(output);
  Result<void> checked = written ? elf::check_output(input, *written)
                                 : Result<void>(written.error());
  if (!checked) {
    ::unlink(output.c_str());
  }
  return checked;
}

Result<void> checked_strip(const elf::ElfFile& input,
                           const std::string& output,
                           const elf::Decider& decide) {
  auto stripped = elf::strip(input, output, decide);
  if (!stripped) {
    return std::move(stripped).error();
  }
  return check_written(input, output);
}

// Runs `plugin` on `input` into `output` (which does not exist yet): its
// whole-file hook if it has one and takes the file, else the engine with
// its decide().
Result<void> run_policy(const Plugin& plugin,
                        const elf::ElfFile& input,
                        const std::string& output,
                        const std::string& subject) {
  const ktc_strip_ops& ops = plugin.strip_ops();
  if (ops.whole_file != nullptr) {
    ktc_plugin_call call = new_call(plugin);
    int status = ops.whole_file(plugin.state(), &call, input.path().c_str(),
                                output.c_str());
    if (status == KTC_PLUGIN_OK) {
      // sync_file() also refuses anything but a regular file (a link the
      // plugin left, say) before it is read.
      if (auto written = sync_file(output); !written) {
        ::unlink(output.c_str());
        return written;
      }
      return check_written(input, output);
    }
    ::unlink(output.c_str());
    if (status != KTC_PLUGIN_NOT_MINE) {
      return call_error(plugin, call, status, subject);
    }
  }
  elf::Decider decide = [&](const elf::Section& section,
                            uint32_t roles) -> Result<elf::Decision> {
    ktc_plugin_call call = new_call(plugin);
    ktc_strip_section view = section_view(section, roles);
    int decision = KTC_STRIP_KEEP;
    int status = ops.decide(plugin.state(), &call, &view, &decision);
    if (status != KTC_PLUGIN_OK) {
      return call_error(plugin, call, status,
                        fmt::format("{}: section {} ({})", subject,
                                    section.index, section.name));
    }
    return to_decision(decision, plugin);
  };
  return checked_strip(input, output, decide);
}

uint64_t size_of(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

} // namespace

Result<StripOutcome> strip_file(Registry& registry,
                                std::string_view policy,
                                const std::string& input,
                                const std::string& output,
                                const StripFileOptions& options) {
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
  std::string subject = fmt::format("strip {} with policy {}", input, policy);

  StripOutcome outcome;
  outcome.requested = std::string(policy);
  outcome.input_size = static_cast<uint64_t>(st.st_size);

  auto opened = elf::ElfFile::open(input);
  std::string temp = temp_name_beside(output);
  struct TempGuard {
    const std::string& path;
    bool keep = false;
    ~TempGuard() {
      if (!keep) {
        ::unlink(path.c_str());
      }
    }
  } guard{temp};

  if (!opened) {
    if (!options.whole_file_fallback) {
      return std::move(opened).error();
    }
    outcome.fallback = opened.error().message;
  } else {
    KTC_TRY_ASSIGN(outcome.build_id, elf::build_id(*opened));
    auto ran = run_policy(*plugin, *opened, temp, subject);
    if (ran) {
      outcome.policy = plugin->name();
      outcome.policy_version = plugin->version();
      outcome.stripped = plugin->name() != "none";
    } else {
      // The reference's order: the requested policy, then a debug-only
      // strip, then the file as it is.
      KTC_LOG(warn, "Strip policy {} failed for {}: {}; trying policy debug",
              policy, input, ran.error().message);
      outcome.fallback = ran.error().message;
      auto debug = checked_strip(*opened, temp, elf::debug_policy);
      if (debug) {
        outcome.policy = "debug";
        outcome.policy_version = KTC_VERSION_STRING;
        outcome.stripped = true;
      } else {
        KTC_LOG(warn, "Strip policy debug failed for {}: {}", input,
                debug.error().message);
        if (!options.whole_file_fallback) {
          return make_error(ran.error().status, "{}", ran.error().message);
        }
        outcome.fallback = fmt::format("{}; then {}", ran.error().message,
                                       debug.error().message);
      }
    }
  }
  if (outcome.policy.empty()) {
    // Nothing is written: a copy of the whole input would only be copied
    // again by the caller, which keeps the input as it is instead.
    KTC_LOG(warn, "Keeping {} whole: {}", input, *outcome.fallback);
    outcome.policy = "none";
    outcome.policy_version = KTC_VERSION_STRING;
    outcome.stripped = false;
    outcome.kept_input = true;
    outcome.output_size = outcome.input_size;
    return outcome;
  }
  if (options.sync) {
    KTC_TRY(sync_file(temp));
  }
  if (::rename(temp.c_str(), output.c_str()) != 0) {
    return errno_error(errno, output);
  }
  guard.keep = true;
  outcome.output_size = size_of(output);
  KTC_LOG(debug, "Stripped {} to {} with policy {} {}: {} -> {} bytes", input,
          output, outcome.policy, outcome.policy_version, outcome.input_size,
          outcome.output_size);
  return outcome;
}

namespace {

int engine_service_strip(ktc_plugin_call* call,
                         const char* input,
                         const char* output,
                         ktc_strip_decide_fn decide,
                         void* context) {
  auto fail = [&](const Error& error) {
    if (call != nullptr) {
      call->error = error.message;
    }
    return error.status == Status::invalid     ? KTC_PLUGIN_E_INVALID
           : error.status == Status::io        ? KTC_PLUGIN_E_IO
           : error.status == Status::not_found ? KTC_PLUGIN_E_NOTFOUND
                                               : KTC_PLUGIN_E_GENERIC;
  };
  if (input == nullptr || output == nullptr || decide == nullptr) {
    return fail(Error{Status::invalid,
                      "strip engine: input, output and decide are required"});
  }
  auto opened = elf::ElfFile::open(input);
  if (!opened) {
    return fail(opened.error());
  }
  elf::Decider decider = [&](const elf::Section& section,
                             uint32_t roles) -> Result<elf::Decision> {
    ktc_strip_section view = section_view(section, roles);
    int decision = KTC_STRIP_KEEP;
    int status = decide(context, &view, &decision);
    if (status != KTC_PLUGIN_OK) {
      return make_error(Status::plugin,
                        "{}: the decision for section {} ({}) failed with "
                        "status {}",
                        input, section.index, section.name, status);
    }
    if (decision < KTC_STRIP_KEEP || decision > KTC_STRIP_DROP) {
      return make_error(Status::plugin, "{}: unknown decision {} for {}", input,
                        decision, section.name);
    }
    return static_cast<elf::Decision>(decision);
  };
  auto stripped = checked_strip(*opened, output, decider);
  return stripped ? KTC_PLUGIN_OK : fail(stripped.error());
}

} // namespace

const ktc_strip_engine k_strip_engine = {
    sizeof(ktc_strip_engine),
    0,
    engine_service_strip,
};

StripScratch::~StripScratch() {
  if (!m_dir.empty()) {
    if (!m_file.empty()) {
      ::unlink(m_file.c_str());
    }
    ::rmdir(m_dir.c_str());
  }
}

Result<std::string> StripScratch::make(const std::string& base) {
  std::string directory = base;
  if (directory.empty()) {
    const char* temp = std::getenv("TMPDIR");
    directory = temp != nullptr && *temp != '\0' ? temp : "/tmp";
  }
  std::string pattern = fmt::format("{}/ktcache-strip-XXXXXX", directory);
  if (::mkdtemp(pattern.data()) == nullptr) {
    return errno_error(
        errno, fmt::format("cannot create a directory like {}", pattern));
  }
  m_dir = pattern;
  m_file = m_dir + "/vmlinux";
  return m_file;
}

namespace {

// The vmlinux's build-id when it is a readable ELF file, else none.
std::optional<std::string> build_id_of(const std::string& path) {
  auto file = elf::ElfFile::open(path);
  if (!file) {
    return std::nullopt;
  }
  auto id = elf::build_id(*file);
  return id ? *id : std::nullopt;
}

} // namespace

Result<void> strip_for_store(Registry& registry,
                             cache::StoreRequest& request,
                             const StoreStripOptions& options,
                             StripScratch& scratch) {
  std::string arch_name =
      request.arch.empty() ? cache::host_arch() : request.arch;
  if (auto arch = elf::find_arch(arch_name)) {
    KTC_TRY(elf::check_vmlinux_arch(request.vmlinux, *arch));
  }
  cache::VmlinuxOrigin& origin = request.vmlinux_origin;
  if (options.no_strip) {
    origin.build_id = build_id_of(request.vmlinux);
    return {};
  }
  bool named = options.policy.has_value();
  std::string policy = named ? *options.policy : "btf";
  KTC_TRY_ASSIGN(std::string output, scratch.make(options.scratch_base));
  StripFileOptions strip_options;
  strip_options.whole_file_fallback = true;
  auto outcome =
      strip_file(registry, policy, request.vmlinux, output, strip_options);
  if (!outcome) {
    // The default policy's plugin missing is no reason to refuse a store;
    // a policy the caller named is.
    if (named || outcome.error().status != Status::plugin) {
      return std::move(outcome).error();
    }
    KTC_LOG(warn, "Storing {} whole: {}", request.vmlinux,
            outcome.error().message);
    origin.requested = policy;
    origin.fallback = outcome.error().message;
    origin.build_id = build_id_of(request.vmlinux);
    return {};
  }
  origin.policy = outcome->policy;
  origin.policy_version = outcome->policy_version;
  origin.stripped = outcome->stripped;
  origin.original_size = outcome->input_size;
  origin.build_id = outcome->build_id;
  if (outcome->policy != outcome->requested) {
    origin.requested = outcome->requested;
  }
  origin.fallback = outcome->fallback;
  if (!outcome->kept_input) {
    request.vmlinux = output;
  }
  return {};
}

} // namespace ktc::plugin
