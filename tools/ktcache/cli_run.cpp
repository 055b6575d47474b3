// The run command: a cached kernel held (leased) while a command uses it.

#include "cli_commands.hpp"
#include "cli_progress.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string_view>

extern char** environ;

namespace ktc::cli {
namespace {

// The signals a process may send ktcache to reach COMMAND.
constexpr std::array<int, 4> k_forwarded_signals = {SIGINT, SIGTERM, SIGHUP,
                                                    SIGQUIT};

// The variables ktcache sets for COMMAND; inherited values are dropped
// first, so an absent vmlinux or config leaves its variable unset.
constexpr std::array<std::string_view, 6> k_entry_variables = {
    "KTCACHE_ENTRY_DIR", "KTCACHE_KEY",    "KTCACHE_IMAGE",
    "KTCACHE_VMLINUX",   "KTCACHE_CONFIG", "KTSTR_KERNEL"};

// The running child, read by the signal handler; 0 when there is none.
std::atomic<pid_t> g_child{0};
static_assert(std::atomic<pid_t>::is_always_lock_free);

void forward_signal(int number, siginfo_t* info, void* /*context*/) {
  // A terminal's Ctrl-C (or Ctrl-\, a hangup) is sent by the kernel to the
  // whole foreground process group: the child has it already.
  if (info != nullptr && info->si_code == SI_KERNEL) {
    return;
  }
  int saved_errno = errno;
  pid_t child = g_child.load();
  if (child > 0) {
    ::kill(child, number);
  }
  errno = saved_errno;
}

// While alive, the forwarded signals are caught (ktcache does not die of
// them) and, once set_child() is called, passed on to the child. They are
// blocked from construction until set_child(), so that none arriving while
// the child is being started is lost.
class SignalForwarder {
public:
  SignalForwarder() {
    sigset_t block;
    sigemptyset(&block);
    for (int number : k_forwarded_signals) {
      sigaddset(&block, number);
    }
    ::sigprocmask(SIG_BLOCK, &block, &m_original_mask);
    struct sigaction action {};
    action.sa_sigaction = forward_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < k_forwarded_signals.size(); ++i) {
      ::sigaction(k_forwarded_signals[i], &action, &m_previous[i]);
    }
  }
  SignalForwarder(const SignalForwarder&) = delete;
  SignalForwarder& operator=(const SignalForwarder&) = delete;
  ~SignalForwarder() {
    g_child.store(0);
    for (size_t i = 0; i < k_forwarded_signals.size(); ++i) {
      ::sigaction(k_forwarded_signals[i], &m_previous[i], nullptr);
    }
    ::sigprocmask(SIG_SETMASK, &m_original_mask, nullptr);
  }

  // The mask the child starts with: ktcache's own before construction.
  const sigset_t& original_mask() const { return m_original_mask; }

  // Forwards to `child` from now on, including signals that arrived while
  // they were blocked.
  void set_child(pid_t child) {
    g_child.store(child);
    ::sigprocmask(SIG_SETMASK, &m_original_mask, nullptr);
  }

  // Stops forwarding: called while the exited child is still a zombie, so
  // its PID cannot have been reused by then.
  void clear_child() { g_child.store(0); }

private:
  sigset_t m_original_mask{};
  std::array<struct sigaction, k_forwarded_signals.size()> m_previous{};
};

bool is_entry_variable(std::string_view assignment) {
  std::string_view name = assignment.substr(0, assignment.find('='));
  for (std::string_view variable : k_entry_variables) {
    if (name == variable) {
      return true;
    }
  }
  return false;
}

// ktcache's environment without the entry variables, then the entry's.
std::vector<std::string> child_environment(const ktc_entry_info& info) {
  std::vector<std::string> result;
  for (char** variable = environ; variable != nullptr && *variable != nullptr;
       ++variable) {
    if (!is_entry_variable(*variable)) {
      result.emplace_back(*variable);
    }
  }
  result.push_back(fmt::format("KTCACHE_ENTRY_DIR={}", info.path));
  result.push_back(fmt::format("KTCACHE_KEY={}", info.key));
  result.push_back(fmt::format("KTCACHE_IMAGE={}", info.image_path));
  if (info.vmlinux_path != nullptr) {
    result.push_back(fmt::format("KTCACHE_VMLINUX={}", info.vmlinux_path));
  }
  if (info.config_path != nullptr) {
    result.push_back(fmt::format("KTCACHE_CONFIG={}", info.config_path));
  }
  result.push_back(fmt::format("KTSTR_KERNEL={}", info.path));
  return result;
}

// NULL-terminated pointers into `items`, for exec.
std::vector<char*> exec_vector(std::vector<std::string>& items) {
  std::vector<char*> result;
  result.reserve(items.size() + 1);
  for (auto& item : items) {
    result.push_back(item.data());
  }
  result.push_back(nullptr);
  return result;
}

class SpawnAttributes {
public:
  explicit SpawnAttributes(const sigset_t& mask) {
    posix_spawnattr_init(&m_attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int number : k_forwarded_signals) {
      sigaddset(&defaults, number);
    }
    posix_spawnattr_setsigdefault(&m_attr, &defaults);
    posix_spawnattr_setsigmask(&m_attr, &mask);
    posix_spawnattr_setflags(&m_attr,
                             POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  ~SpawnAttributes() { posix_spawnattr_destroy(&m_attr); }
  const posix_spawnattr_t* get() const { return &m_attr; }

private:
  posix_spawnattr_t m_attr;
};

// The exit code of a shell that could not run `command`: 127 when it does
// not exist, 126 when it cannot be executed.
[[noreturn]] void throw_exec_failure(const std::string& command, int error) {
  if (error == ENOENT || error == ENOTDIR) {
    throw CliError(127, fmt::format("{}: command not found", command));
  }
  throw CliError(
      126, fmt::format("cannot execute {}: {}", command, std::strerror(error)));
}

// Waits for `child` to exit, forwarding signals meanwhile, and returns its
// status as a shell reports it.
int wait_for_child(pid_t child, SignalForwarder& forwarder) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) !=
         0) {
    if (errno != EINTR) {
      throw CliError(k_exit_environment,
                     fmt::format("waiting for process {} failed: {}", child,
                                 std::strerror(errno)));
    }
  }
  forwarder.clear_child();
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      throw CliError(k_exit_environment,
                     fmt::format("waiting for process {} failed: {}", child,
                                 std::strerror(errno)));
    }
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return WEXITSTATUS(status);
}

} // namespace

EntryPtr acquire_entry(ktc_cache* cache, const RunOptions& options) {
  // A build on a miss can be interrupted like `ktcache build`; the
  // forwarding of signals to COMMAND starts only once the entry is held.
  CancelOnSignals cancel_on_signals;
  ProgressView progress(options.quiet);
  ktc_hooks hooks = progress.hooks();
  ktc_build_options build = KTC_BUILD_OPTIONS_INIT;
  build.hooks = &hooks;
  ktc_resolve_options resolve = KTC_RESOLVE_OPTIONS_INIT;
  resolve.id = options.id.c_str();
  resolve.flags = KTC_RESOLVE_LEASE;
  if (options.no_build) {
    resolve.flags |= KTC_RESOLVE_NO_BUILD;
  }
  resolve.build = &build;
  ktc_entry* raw = nullptr;
  int status = ktc_resolve(&raw, cache, &resolve, nullptr);
  progress.finish();
  check(status);
  if (raw == nullptr) {
    throw CliError(k_exit_not_found,
                   fmt::format("{} was built but not stored (a dirty tree; "
                               "`ktcache build --store-dirty` stores it): "
                               "run needs a cached entry",
                               options.id));
  }
  return EntryPtr(raw);
}

int run_run(ktc_cache* cache, const RunOptions& options) {
  if (options.command.empty()) {
    throw CliError(k_exit_usage, "run needs a COMMAND after --");
  }
  EntryPtr entry = acquire_entry(cache, options);
  ktc_entry_info info = entry_info(entry.get());

  std::vector<std::string> arguments = options.command;
  std::vector<std::string> environment = child_environment(info);
  std::vector<char*> argv = exec_vector(arguments);
  std::vector<char*> envp = exec_vector(environment);

  std::fflush(nullptr);
  int code = 0;
  {
    SignalForwarder forwarder;
    SpawnAttributes attributes(forwarder.original_mask());
    pid_t child = -1;
    // The lease's lock file descriptor is close-on-exec: the lease stays
    // ktcache's, held until the child has exited.
    int error = ::posix_spawnp(&child, argv[0], nullptr, attributes.get(),
                               argv.data(), envp.data());
    if (error != 0) {
      throw_exec_failure(arguments[0], error);
    }
    forwarder.set_child(child);
    code = wait_for_child(child, forwarder);
  }
  // Releases the lease.
  entry.reset();
  return code;
}

CLI::App* add_run(CLI::App& app, RunOptions& options) {
  auto* command = app.add_subcommand(
      "run", "Run a command with a cached kernel held (leased) until it exits");
  command
      ->add_option("KEY-OR-ID", options.id,
                   "A cache key, or any kernel identifier `resolve` takes "
                   "(6.14.2, git+URL#REF, a path, ...)")
      ->required();
  command->add_flag("--no-build", options.no_build,
                    "Exit 1 when the kernel is not cached instead of "
                    "building it (a key never builds)");
  command
      ->add_option("COMMAND", options.command,
                   "The command and its arguments, after --")
      ->required();
  command->footer(
      "KEY-OR-ID is resolved as `ktcache resolve` does: a key is looked "
      "up, a\nversion, git source or tree is found by its key or, unless "
      "--no-build,\nbuilt first (with the default options; `ktcache build` "
      "takes more).\n\n"
      "Everything after -- is COMMAND, passed on untouched (no shell: use\n"
      "sh -c '...' for variables and redirections). COMMAND inherits\n"
      "ktcache's standard streams and environment, plus:\n"
      "  KTCACHE_ENTRY_DIR  the entry's directory\n"
      "  KTCACHE_KEY        the cache key\n"
      "  KTCACHE_IMAGE      the boot image\n"
      "  KTCACHE_VMLINUX    the vmlinux (unset when the entry has none)\n"
      "  KTCACHE_CONFIG     the stored .config (unset when it has none)\n"
      "  KTSTR_KERNEL       the entry's directory, so that ktstr run inside\n"
      "                     uses this kernel\n\n"
      "Lease: ktcache holds a shared lock on <root>/.locks/<key>.lock until\n"
      "COMMAND exits: `clean` skips the entry (in use, exit 5) and a `store`\n"
      "replacing it waits. The lock is ktcache's (close-on-exec, not "
      "inherited);\nit ends with ktcache. An entry being published (its lock "
      "held\nexclusively) is waited for up to 10 s, then exit 5 names the "
      "holders.\n\n"
      "Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to ktcache (kill) "
      "are\nforwarded to COMMAND, and ktcache waits for it to exit. A "
      "terminal's\nCtrl-C or Ctrl-\\ reaches COMMAND directly and is not "
      "sent again.\n\n"
      "Exit: COMMAND's exit status, or 128+N when a signal N killed it; 127 "
      "when\nCOMMAND is not found, 126 when it cannot be executed. Before "
      "COMMAND\nstarts: 1 when the kernel is not cached (and not built), 2 "
      "on a usage\nerror or a malformed identifier, 3 when the entry is "
      "corrupt, 5 when the\nlease timed out, and the codes of `ktcache "
      "build` when a build fails.");
  return command;
}

} // namespace ktc::cli
