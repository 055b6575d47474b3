#include "util/process.hpp"

#include "util/fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>

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

  pid_t pid = -1;
  int spawn_error = ::posix_spawnp(&pid, argv[0].c_str(), actions.get(),
                                   nullptr, raw_argv.data(), environ);
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

} // namespace ktc::process
