#include "util/process.hpp"

#include "util/fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

extern char** environ;

namespace ktc::process {
namespace {

struct Pipe {
  Fd read_end;
  Fd write_end;
};

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return errno_error(errno, "pipe");
  }
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// Owns posix_spawn_file_actions_t so every exit path destroys it.
class FileActions {
public:
  FileActions() { m_ok = ::posix_spawn_file_actions_init(&m_actions) == 0; }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  ~FileActions() {
    if (m_ok) {
      ::posix_spawn_file_actions_destroy(&m_actions);
    }
  }
  bool ok() const { return m_ok; }
  posix_spawn_file_actions_t* get() { return &m_actions; }

private:
  posix_spawn_file_actions_t m_actions;
  bool m_ok = false;
};

// Owns posix_spawnattr_t.
class SpawnAttributes {
public:
  SpawnAttributes() { m_ok = ::posix_spawnattr_init(&m_attributes) == 0; }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  ~SpawnAttributes() {
    if (m_ok) {
      ::posix_spawnattr_destroy(&m_attributes);
    }
  }
  bool ok() const { return m_ok; }
  posix_spawnattr_t* get() { return &m_attributes; }

private:
  posix_spawnattr_t m_attributes;
  bool m_ok = false;
};

} // namespace

Result<Output> run(const std::vector<std::string>& argv,
                   const std::string& cwd,
                   size_t max_output) {
  if (argv.empty()) {
    return make_error(Status::invalid, "no command to run");
  }
  KTC_TRY_ASSIGN(Pipe out_pipe, make_pipe());
  KTC_TRY_ASSIGN(Pipe err_pipe, make_pipe());
  FileActions actions;
  if (!actions.ok()) {
    return make_error(Status::no_memory, "{}: cannot prepare to run it",
                      argv[0]);
  }
  bool prepared =
      ::posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO,
                                         "/dev/null", O_RDONLY, 0) == 0 &&
      ::posix_spawn_file_actions_adddup2(
          actions.get(), out_pipe.write_end.get(), STDOUT_FILENO) == 0 &&
      ::posix_spawn_file_actions_adddup2(
          actions.get(), err_pipe.write_end.get(), STDERR_FILENO) == 0 &&
      (cwd.empty() ||
       ::posix_spawn_file_actions_addchdir_np(actions.get(), cwd.c_str()) == 0);
  if (!prepared) {
    return make_error(Status::no_memory, "{}: cannot prepare to run it",
                      argv[0]);
  }
  std::vector<char*> raw_argv;
  raw_argv.reserve(argv.size() + 1);
  for (const auto& argument : argv) {
    raw_argv.push_back(const_cast<char*>(argument.c_str()));
  }
  raw_argv.push_back(nullptr);

  // A session of its own has no controlling terminal: a tool that would
  // prompt (git asking for a password) fails instead of hanging.
  SpawnAttributes attributes;
  if (!attributes.ok() ||
      ::posix_spawnattr_setflags(attributes.get(), POSIX_SPAWN_SETSID) != 0) {
    return make_error(Status::no_memory, "{}: cannot prepare to run it",
                      argv[0]);
  }
  pid_t pid = -1;
  int spawn_error = ::posix_spawnp(&pid, argv[0].c_str(), actions.get(),
                                   attributes.get(), raw_argv.data(), environ);
  if (spawn_error != 0) {
    Error error =
        errno_error(spawn_error, fmt::format("cannot run {}", argv[0]));
    if (spawn_error == ENOENT || spawn_error == EACCES) {
      error.status = Status::not_found;
    }
    return error;
  }
  out_pipe.write_end.reset();
  err_pipe.write_end.reset();

  Output output;
  std::array<pollfd, 2> polls{{{out_pipe.read_end.get(), POLLIN, 0},
                               {err_pipe.read_end.get(), POLLIN, 0}}};
  std::array<std::string*, 2> sinks{&output.standard_output,
                                    &output.standard_error};
  int open_streams = 2;
  char buffer[16384];
  while (open_streams > 0) {
    if (::poll(polls.data(), polls.size(), -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (size_t stream = 0; stream < polls.size(); ++stream) {
      if (polls[stream].fd < 0 || polls[stream].revents == 0) {
        continue;
      }
      ssize_t count = ::read(polls[stream].fd, buffer, sizeof(buffer));
      if (count < 0 && errno == EINTR) {
        continue;
      }
      if (count <= 0) {
        polls[stream].fd = -1;
        --open_streams;
        continue;
      }
      std::string& sink = *sinks[stream];
      size_t room = max_output > sink.size() ? max_output - sink.size() : 0;
      sink.append(buffer, std::min(room, static_cast<size_t>(count)));
    }
  }
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) {
      return errno_error(errno, fmt::format("waiting for {}", argv[0]));
    }
  }
  output.exit_status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status)
                                              : 128 + WTERMSIG(wait_status);
  return output;
}

namespace {

// The caller's environment with `overrides` replacing or adding variables.
std::vector<std::string> merged_environment(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> result;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    std::string_view text(*variable);
    std::string_view name = text.substr(0, text.find('='));
    bool replaced = false;
    for (const auto& [key, value] : overrides) {
      if (key == name) {
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      result.emplace_back(text);
    }
  }
  for (const auto& [key, value] : overrides) {
    result.push_back(key + "=" + value);
  }
  return result;
}

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) {
        continue;
      }
      return; // The log is best effort; the command's status is not.
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
}

class LineSplitter {
public:
  LineSplitter(const LoggedCommand& command, LoggedOutcome& outcome)
      : m_command(command), m_outcome(outcome) {}

  void feed(std::string_view data) {
    while (!data.empty()) {
      size_t newline = data.find('\n');
      if (newline == std::string_view::npos) {
        m_partial.append(data);
        // A line without end is cut rather than grown without bound.
        if (m_partial.size() > 65536) {
          finish_line();
        }
        return;
      }
      m_partial.append(data.substr(0, newline));
      finish_line();
      data.remove_prefix(newline + 1);
    }
  }

  void flush() {
    if (!m_partial.empty()) {
      finish_line();
    }
  }

private:
  void finish_line() {
    if (!m_partial.empty() && m_partial.back() == '\r') {
      m_partial.pop_back();
    }
    if (m_command.on_line) {
      m_command.on_line(m_partial);
    }
    if (m_command.tail_lines > 0) {
      if (m_outcome.tail.size() == m_command.tail_lines) {
        m_outcome.tail.pop_front();
      }
      m_outcome.tail.push_back(std::move(m_partial));
    }
    m_partial.clear();
  }

  const LoggedCommand& m_command;
  LoggedOutcome& m_outcome;
  std::string m_partial;
};

} // namespace

Result<void> spawn_detached(const std::vector<std::string>& argv) {
  if (argv.empty()) {
    return make_error(Status::invalid, "no command to run");
  }
  std::vector<std::string> command{"setsid", "--fork"};
  command.insert(command.end(), argv.begin(), argv.end());
  FileActions actions;
  if (!actions.ok() ||
      ::posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO,
                                         "/dev/null", O_RDONLY, 0) != 0 ||
      ::posix_spawn_file_actions_addopen(actions.get(), STDOUT_FILENO,
                                         "/dev/null", O_WRONLY, 0) != 0 ||
      ::posix_spawn_file_actions_addopen(actions.get(), STDERR_FILENO,
                                         "/dev/null", O_WRONLY, 0) != 0) {
    return make_error(Status::no_memory, "{}: cannot prepare to run it",
                      argv[0]);
  }
  std::vector<char*> raw_argv;
  for (const auto& argument : command) {
    raw_argv.push_back(const_cast<char*>(argument.c_str()));
  }
  raw_argv.push_back(nullptr);
  pid_t pid = -1;
  int spawn_error = ::posix_spawnp(&pid, "setsid", actions.get(), nullptr,
                                   raw_argv.data(), environ);
  if (spawn_error != 0) {
    Error error = errno_error(spawn_error, "cannot run setsid");
    error.status = Status::not_found;
    return error;
  }
  // setsid --fork exits as soon as its child runs.
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) {
      return errno_error(errno, "waiting for setsid");
    }
  }
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    return make_error(Status::not_found, "setsid --fork {} failed to start",
                      argv[0]);
  }
  return {};
}

Result<LoggedOutcome> run_logged(const LoggedCommand& command) {
  if (command.argv.empty()) {
    return make_error(Status::invalid, "no command to run");
  }
  const std::string& program = command.argv[0];
  KTC_TRY_ASSIGN(Pipe output_pipe, make_pipe());
  FileActions actions;
  SpawnAttributes attributes;
  if (!actions.ok() || !attributes.ok()) {
    return make_error(Status::no_memory, "{}: cannot prepare to run it",
                      program);
  }
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  sigset_t no_mask;
  sigemptyset(&no_mask);
  bool prepared =
      ::posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO,
                                         "/dev/null", O_RDONLY, 0) == 0 &&
      ::posix_spawn_file_actions_adddup2(
          actions.get(), output_pipe.write_end.get(), STDOUT_FILENO) == 0 &&
      ::posix_spawn_file_actions_adddup2(
          actions.get(), output_pipe.write_end.get(), STDERR_FILENO) == 0 &&
      (command.cwd.empty() || ::posix_spawn_file_actions_addchdir_np(
                                  actions.get(), command.cwd.c_str()) == 0) &&
      ::posix_spawnattr_setflags(attributes.get(),
                                 POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                     POSIX_SPAWN_SETSIGMASK) == 0 &&
      ::posix_spawnattr_setpgroup(attributes.get(), 0) == 0 &&
      ::posix_spawnattr_setsigdefault(attributes.get(), &defaults) == 0 &&
      ::posix_spawnattr_setsigmask(attributes.get(), &no_mask) == 0;
  if (!prepared) {
    return make_error(Status::no_memory, "{}: cannot prepare to run it",
                      program);
  }
  std::vector<char*> raw_argv;
  for (const auto& argument : command.argv) {
    raw_argv.push_back(const_cast<char*>(argument.c_str()));
  }
  raw_argv.push_back(nullptr);
  std::vector<std::string> environment =
      merged_environment(command.environment);
  std::vector<char*> raw_environment;
  for (auto& variable : environment) {
    raw_environment.push_back(variable.data());
  }
  raw_environment.push_back(nullptr);

  pid_t pid = -1;
  int spawn_error =
      ::posix_spawnp(&pid, program.c_str(), actions.get(), attributes.get(),
                     raw_argv.data(), raw_environment.data());
  if (spawn_error != 0) {
    Error error =
        errno_error(spawn_error, fmt::format("cannot run {}", program));
    if (spawn_error == ENOENT || spawn_error == EACCES) {
      error.status = Status::not_found;
    }
    return error;
  }
  output_pipe.write_end.reset();

  LoggedOutcome outcome;
  LineSplitter lines(command, outcome);
  auto started = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> terminated_at;
  bool killed = false;
  auto stop_group = [&](int signal) { ::kill(-pid, signal); };
  char buffer[65536];
  bool open = true;
  while (open) {
    pollfd poll_fd{output_pipe.read_end.get(), POLLIN, 0};
    int ready = ::poll(&poll_fd, 1, 100);
    if (ready < 0 && errno != EINTR) {
      break;
    }
    if (ready > 0) {
      ssize_t count = ::read(poll_fd.fd, buffer, sizeof buffer);
      if (count < 0 && errno != EINTR && errno != EAGAIN) {
        open = false;
      } else if (count == 0) {
        open = false;
      } else if (count > 0) {
        if (command.log_fd >= 0) {
          write_all(command.log_fd, buffer, static_cast<size_t>(count));
        }
        lines.feed(std::string_view(buffer, static_cast<size_t>(count)));
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (!terminated_at) {
      if (command.cancelled && command.cancelled()) {
        outcome.cancelled = true;
      } else if (command.timeout.count() > 0 &&
                 now - started > command.timeout) {
        outcome.timed_out = true;
      }
      if (outcome.cancelled || outcome.timed_out) {
        stop_group(SIGTERM);
        terminated_at = now;
      }
    } else if (!killed && now - *terminated_at > std::chrono::seconds(5)) {
      stop_group(SIGKILL);
      killed = true;
    }
  }
  lines.flush();
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) {
      return errno_error(errno, fmt::format("waiting for {}", program));
    }
  }
  if (terminated_at) {
    // Children that outlived make (or ignored SIGTERM) go too.
    stop_group(SIGKILL);
  }
  outcome.exit_status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status)
                                               : 128 + WTERMSIG(wait_status);
  return outcome;
}

} // namespace ktc::process
