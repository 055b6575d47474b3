#include "bench_common.hpp"

#include <fmt/core.h>
#include <ktcache/ktcache.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace ktc::bench {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

namespace {

double thread_cpu_seconds() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) +
         static_cast<double>(now.tv_nsec) * 1e-9;
}

double to_seconds(const timeval& time) {
  return static_cast<double>(time.tv_sec) +
         static_cast<double>(time.tv_usec) * 1e-6;
}

} // namespace

Stopwatch::Stopwatch() : m_wall(Clock::now()), m_cpu(thread_cpu_seconds()) {}

Sample Stopwatch::elapsed() const {
  return {seconds_since(m_wall), thread_cpu_seconds() - m_cpu};
}

void check_status(int status, std::string_view what) {
  if (status != KTC_OK) {
    throw std::runtime_error(fmt::format(
        "{}: {} ({})", what, ktc_error_message(), ktc_strerror(status)));
  }
}

int run_main(std::string_view program, const std::function<void()>& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& error) {
    fmt::print(stderr, "{}: error: {}\n", program, error.what());
    return 1;
  }
}

Args::Args(int argc, char** argv, std::string usage)
    : m_args(argv + 1, argv + argc), m_usage(std::move(usage)) {}

bool Args::flag(std::string_view name) {
  auto it = std::find(m_args.begin(), m_args.end(), name);
  if (it == m_args.end()) {
    return false;
  }
  m_args.erase(it);
  return true;
}

std::optional<std::string> Args::value(std::string_view name) {
  auto it = std::find(m_args.begin(), m_args.end(), name);
  if (it == m_args.end()) {
    return std::nullopt;
  }
  if (it + 1 == m_args.end()) {
    throw std::runtime_error(fmt::format("{} needs a value", name));
  }
  std::string result = *(it + 1);
  m_args.erase(it, it + 2);
  return result;
}

std::string Args::value_or(std::string_view name, std::string fallback) {
  return value(name).value_or(std::move(fallback));
}

long Args::number_or(std::string_view name, long fallback) {
  auto text = value(name);
  if (!text) {
    return fallback;
  }
  char* end = nullptr;
  errno = 0;
  long number = std::strtol(text->c_str(), &end, 10);
  if (errno != 0 || end == text->c_str() || *end != '\0' || number < 1) {
    throw std::runtime_error(
        fmt::format("{} wants a positive integer, not \"{}\"", name, *text));
  }
  return number;
}

void Args::handle_help() {
  if (flag("--help") || flag("-h")) {
    fmt::print("{}", m_usage);
    std::exit(0);
  }
}

void Args::finish() const {
  if (!m_args.empty()) {
    throw std::runtime_error(
        fmt::format("unexpected argument \"{}\"\n{}", m_args.front(), m_usage));
  }
}

ScratchDir::ScratchDir(const std::string& parent, std::string_view prefix) {
  std::string pattern = fmt::format("{}/{}-XXXXXX", parent, prefix);
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(fmt::format("cannot create a directory in {}: {}",
                                         parent, std::strerror(errno)));
  }
  m_path = pattern;
}

ScratchDir::~ScratchDir() {
  if (m_keep) {
    fmt::print(stderr, "kept {}\n", m_path);
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(m_path, ignored);
}

std::string ScratchDir::operator/(std::string_view name) const {
  return m_path + "/" + std::string(name);
}

CacheHandle::CacheHandle(const std::string& root) {
  ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
  options.root = root.c_str();
  check_status(ktc_cache_open(&m_cache, &options), "open " + root);
}

CacheHandle::~CacheHandle() {
  ktc_cache_free(m_cache);
}

void write_file(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out.flush()) {
    throw std::runtime_error(fmt::format("cannot write {}", path));
  }
}

void store_sample_entry(const std::string& root,
                        const std::string& scratch,
                        const std::string& key) {
  std::string image = scratch + "/bzImage";
  std::string vmlinux = scratch + "/vmlinux";
  std::string config = scratch + "/config";
  write_file(image, std::string(4096, 'i'));
  write_file(vmlinux, std::string(8192, 'v'));
  write_file(config,
             "CONFIG_64BIT=y\nCONFIG_BPF=y\nCONFIG_SCHED_CLASS_EXT=y\n");

  CacheHandle cache(root);
  ktc_store_options store = KTC_STORE_OPTIONS_INIT;
  store.flags = KTC_STORE_NO_STRIP;
  store.image = image.c_str();
  store.vmlinux = vmlinux.c_str();
  store.config = config.c_str();
  store.arch = "x86_64";
  store.version = "6.14.2";
  store.source_json = R"({"type":"tarball"})";
  store.kconfig_hash = "0123456789abcdef";
  check_status(ktc_store(nullptr, cache.get(), key.c_str(), &store),
               "store " + key);
}

std::string find_program(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    std::string candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, name);
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    dirs = colon == std::string_view::npos ? "" : dirs.substr(colon + 1);
  }
  throw std::runtime_error(fmt::format("{} not found in PATH", name));
}

int spawn_and_wait(const std::vector<std::string>& argv, double* child_cpu) {
  std::vector<char*> c_argv;
  for (const std::string& arg : argv) {
    c_argv.push_back(const_cast<char*>(arg.c_str()));
  }
  c_argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  pid_t pid = 0;
  int error =
      ::posix_spawn(&pid, c_argv[0], &actions, nullptr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    throw std::runtime_error(
        fmt::format("cannot run {}: {}", argv[0], std::strerror(error)));
  }
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      throw std::runtime_error(
          fmt::format("wait4 {}: {}", argv[0], std::strerror(errno)));
    }
  }
  if (child_cpu != nullptr) {
    *child_cpu = to_seconds(usage.ru_utime) + to_seconds(usage.ru_stime);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Sample spawn_timed(const std::vector<std::string>& argv) {
  auto start = Clock::now();
  Sample sample;
  int status = spawn_and_wait(argv, &sample.cpu);
  sample.wall = seconds_since(start);
  if (status != 0) {
    std::string command;
    for (const std::string& arg : argv) {
      if (!command.empty()) {
        command += ' ';
      }
      command += arg;
    }
    throw std::runtime_error(
        fmt::format("`{}` exited with status {}", command, status));
  }
  return sample;
}

std::vector<std::vector<Sample>>
run_interleaved(long reps,
                const std::vector<std::function<Sample()>>& variants) {
  std::vector<std::vector<Sample>> samples(variants.size());
  for (long rep = 0; rep < reps; ++rep) {
    for (size_t step = 0; step < variants.size(); ++step) {
      size_t index = (static_cast<size_t>(rep) + step) % variants.size();
      samples[index].push_back(variants[index]());
    }
  }
  return samples;
}

double median(std::vector<double> samples) {
  if (samples.empty()) {
    return 0;
  }
  std::sort(samples.begin(), samples.end());
  size_t middle = samples.size() / 2;
  if (samples.size() % 2 == 1) {
    return samples[middle];
  }
  return (samples[middle - 1] + samples[middle]) / 2;
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Report::Report(std::string benchmark, std::string title, std::string unit)
    : m_benchmark(std::move(benchmark)), m_title(std::move(title)),
      m_unit(std::move(unit)) {}

void Report::param(std::string name, std::string json_value) {
  m_params.emplace_back(std::move(name), std::move(json_value));
}

void Report::add(Series series) {
  m_series.push_back(std::move(series));
}

void Report::add(Ratio ratio) {
  m_ratios.push_back(std::move(ratio));
}

void Report::add_timed(const std::string& name,
                       const std::string& label,
                       const std::vector<Sample>& samples,
                       double scale) {
  Series wall{name, label + ", wall", {}};
  Series cpu{name + "_cpu", label + ", cpu", {}};
  for (const Sample& sample : samples) {
    wall.samples.push_back(sample.wall * scale);
    cpu.samples.push_back(sample.cpu * scale);
  }
  add(std::move(wall));
  add(std::move(cpu));
}

void Report::add_timed_ratio(const std::string& name,
                             const std::string& numerator,
                             const std::string& denominator,
                             std::optional<double> goal) {
  add(Ratio{name + " (wall)", numerator, denominator, goal});
  add(Ratio{name + " (cpu)", numerator + "_cpu", denominator + "_cpu", goal});
}

const Series& Report::find(const std::string& name) const {
  for (const Series& series : m_series) {
    if (series.name == name) {
      return series;
    }
  }
  throw std::logic_error("no series named " + name);
}

namespace {

// Numbers in the JSON keep enough digits for nanoseconds and seconds alike.
std::string json_number(double value) {
  return fmt::format("{:.6g}", value);
}

// Enough digits to compare, without exponents: 123456, 1234.5, 12.34, 1.234.
std::string format_value(double value) {
  if (value >= 1000) {
    return fmt::format("{:.0f}", value);
  }
  if (value >= 100) {
    return fmt::format("{:.1f}", value);
  }
  return fmt::format("{:.3g}", value);
}

std::string ratio_verdict(double value, const std::optional<double>& goal) {
  if (!goal) {
    return "";
  }
  return value <= *goal ? "met" : "MISSED";
}

} // namespace

std::string Report::to_json() const {
  std::string out = fmt::format("{{\"benchmark\":{},\"title\":{},\"unit\":{}",
                                json_string(m_benchmark), json_string(m_title),
                                json_string(m_unit));
  out += ",\"params\":{";
  for (size_t i = 0; i < m_params.size(); ++i) {
    out += fmt::format("{}{}:{}", i == 0 ? "" : ",",
                       json_string(m_params[i].first), m_params[i].second);
  }
  out += "},\"results\":[";
  for (size_t i = 0; i < m_series.size(); ++i) {
    const Series& series = m_series[i];
    auto [low, high] =
        std::minmax_element(series.samples.begin(), series.samples.end());
    out += fmt::format(
        "{}{{\"name\":{},\"label\":{},\"median\":{},\"min\":{},\"max\":{},"
        "\"samples\":[",
        i == 0 ? "" : ",", json_string(series.name), json_string(series.label),
        json_number(median(series.samples)), json_number(*low),
        json_number(*high));
    for (size_t j = 0; j < series.samples.size(); ++j) {
      if (j != 0) {
        out += ',';
      }
      out += json_number(series.samples[j]);
    }
    out += "]}";
  }
  out += "],\"ratios\":[";
  for (size_t i = 0; i < m_ratios.size(); ++i) {
    const Ratio& ratio = m_ratios[i];
    double value = median(find(ratio.numerator).samples) /
                   median(find(ratio.denominator).samples);
    out += fmt::format(
        "{}{{\"name\":{},\"numerator\":{},\"denominator\":{},\"value\":{},"
        "\"goal\":{},\"met\":{}}}",
        i == 0 ? "" : ",", json_string(ratio.name),
        json_string(ratio.numerator), json_string(ratio.denominator),
        json_number(value), ratio.goal ? json_number(*ratio.goal) : "null",
        ratio.goal ? (value <= *ratio.goal ? "true" : "false") : "null");
  }
  return out + "]}";
}

void Report::print_table() const {
  fmt::print("{}: {}\n", m_benchmark, m_title);
  for (const auto& [name, value] : m_params) {
    fmt::print("  {} = {}\n", name, value);
  }
  fmt::print("\n  {:<44} {:>12} {:>12} {:>12}\n", "variant", "median " + m_unit,
             "min", "max");
  for (const Series& series : m_series) {
    auto [low, high] =
        std::minmax_element(series.samples.begin(), series.samples.end());
    fmt::print("  {:<44} {:>12} {:>12} {:>12}\n", series.label,
               format_value(median(series.samples)), format_value(*low),
               format_value(*high));
  }
  fmt::print("\n  {:<44} {:>12} {:>12} {:>8}\n", "ratio (medians)", "measured",
             "goal", "");
  for (const Ratio& ratio : m_ratios) {
    double value = median(find(ratio.numerator).samples) /
                   median(find(ratio.denominator).samples);
    std::string goal =
        ratio.goal ? fmt::format("<= {:.2g}x", *ratio.goal) : std::string("-");
    fmt::print("  {:<44} {:>11.2f}x {:>12} {:>8}\n", ratio.name, value, goal,
               ratio_verdict(value, ratio.goal));
  }
}

void Report::emit(bool json, const std::string& json_file) const {
  std::string text = to_json();
  if (!json_file.empty()) {
    write_file(json_file, text + "\n");
  }
  if (json) {
    fmt::print("{}\n", text);
  } else {
    print_table();
  }
}

} // namespace ktc::bench
