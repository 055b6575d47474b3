#pragma once

// What every benchmark program shares: argument parsing, scratch
// directories, interleaved repetitions, process spawning and the report
// (a table, or one JSON object with --json). The programs use the public
// C API only, like any host application.

#include <ktcache/ktcache.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::bench {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start);

// One measurement: wall-clock seconds, and the CPU seconds (user + system)
// spent by the measuring thread or the measured child. On a machine shared
// with builds, wall time includes the slices the scheduler gave to others;
// CPU time does not, so both are reported.
struct Sample {
  double wall = 0;
  double cpu = 0;
};

// Measures the calling thread from construction to elapsed().
class Stopwatch {
public:
  Stopwatch();
  Sample elapsed() const;

private:
  Clock::time_point m_wall;
  double m_cpu;
};

// Throws std::runtime_error naming `what` and ktc_error_message() when
// `status` is not KTC_OK.
void check_status(int status, std::string_view what);

// Runs `body` and turns an escaping exception into "<program>: error: ..."
// on stderr and exit status 1, so that destructors (scratch directories)
// still run.
int run_main(std::string_view program, const std::function<void()>& body);

// A minimal command line: flags and "--name VALUE" options, each taken by
// name; finish() rejects anything left over.
class Args {
public:
  Args(int argc, char** argv, std::string usage);
  bool flag(std::string_view name);
  std::optional<std::string> value(std::string_view name);
  std::string value_or(std::string_view name, std::string fallback);
  long number_or(std::string_view name, long fallback);
  void finish() const;
  // Prints the usage and exits 0 when --help was given.
  void handle_help();

private:
  std::vector<std::string> m_args;
  std::string m_usage;
};

// A scratch directory made with mkdtemp under `parent`, removed with
// everything in it on destruction unless keep() was called.
class ScratchDir {
public:
  ScratchDir(const std::string& parent, std::string_view prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return m_path; }
  std::string operator/(std::string_view name) const;
  void keep() { m_keep = true; }

private:
  std::string m_path;
  bool m_keep = false;
};

// An open cache, closed on destruction.
class CacheHandle {
public:
  explicit CacheHandle(const std::string& root);
  ~CacheHandle();
  CacheHandle(const CacheHandle&) = delete;
  CacheHandle& operator=(const CacheHandle&) = delete;
  ktc_cache* get() const { return m_cache; }

private:
  ktc_cache* m_cache = nullptr;
};

void write_file(const std::string& path, std::string_view data);

// Makes a cache under `root` holding one valid entry `key` with small but
// realistic files (image, vmlinux, config) and metadata as a tarball build
// writes it, through ktc_store. Inputs go to `scratch`.
void store_sample_entry(const std::string& root,
                        const std::string& scratch,
                        const std::string& key);

// The absolute path of a program found in PATH; throws when missing.
std::string find_program(std::string_view name);

// Runs argv (argv[0] an absolute path) with posix_spawn, stdout to
// /dev/null and stdin from /dev/null, and waits. Returns the exit status, or
// 128 + the signal number; `child_cpu`, when given, receives the child's CPU
// seconds.
int spawn_and_wait(const std::vector<std::string>& argv,
                   double* child_cpu = nullptr);

// Runs argv as spawn_and_wait does and measures it; throws when the exit
// status is not 0.
Sample spawn_timed(const std::vector<std::string>& argv);

// Runs every variant once per repetition and returns each one's samples.
// The order rotates from one repetition to the next, so drift (another
// build on the machine, frequency changes) and order effects (who finds
// the caches warm) fall on every variant alike.
std::vector<std::vector<Sample>>
run_interleaved(long reps,
                const std::vector<std::function<Sample()>>& variants);

double median(std::vector<double> samples);

struct Series {
  std::string name;  // machine name, used by ratios and JSON
  std::string label; // what the table shows
  std::vector<double> samples;
};

struct Ratio {
  std::string name;
  std::string numerator;      // a Series name (ktcache)
  std::string denominator;    // a Series name (the anchor)
  std::optional<double> goal; // the ratio must stay at or below it
};

class Report {
public:
  Report(std::string benchmark, std::string title, std::string unit);
  // `json_value` is inserted as is: a number or a quoted string.
  void param(std::string name, std::string json_value);
  void add(Series series);
  void add(Ratio ratio);
  // Two series, `name` (wall) and `name`_cpu, scaled into the unit.
  void add_timed(const std::string& name,
                 const std::string& label,
                 const std::vector<Sample>& samples,
                 double scale);
  // The ratio of wall times and the ratio of CPU times.
  void add_timed_ratio(const std::string& name,
                       const std::string& numerator,
                       const std::string& denominator,
                       std::optional<double> goal);
  // The table on stdout, or with `json` one JSON object; `json_file`, when
  // not empty, receives the JSON object as well.
  void emit(bool json, const std::string& json_file) const;

private:
  const Series& find(const std::string& name) const;
  std::string to_json() const;
  void print_table() const;

  std::string m_benchmark;
  std::string m_title;
  std::string m_unit;
  std::vector<std::pair<std::string, std::string>> m_params;
  std::vector<Series> m_series;
  std::vector<Ratio> m_ratios;
};

std::string json_string(std::string_view text);

} // namespace ktc::bench
