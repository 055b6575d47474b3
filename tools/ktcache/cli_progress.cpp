#include "cli_progress.hpp"

#include "cli_output.hpp"

#include <fmt/format.h>

#include <signal.h>
#include <unistd.h>

#include <cstdio>

namespace ktc::cli {
namespace {

volatile sig_atomic_t g_signal = 0;

void note_signal(int number) {
  g_signal = number;
}

constexpr auto k_plain_interval = std::chrono::seconds(5);
constexpr auto k_bar_interval = std::chrono::milliseconds(100);

// Downloads report bytes; everything else reports percent or counts.
bool counts_bytes(std::string_view stage) {
  return stage == "download" || stage == "extract";
}

std::string amount(std::string_view stage, uint64_t value) {
  return counts_bytes(stage) ? format_size(value) : std::to_string(value);
}

std::string describe(std::string_view stage, uint64_t done, uint64_t total) {
  if (total == 0) {
    return done == 0 ? std::string(stage)
                     : fmt::format("{} {}", stage, amount(stage, done));
  }
  if (!counts_bytes(stage) && total == 100) {
    return fmt::format("{} {}%", stage, done);
  }
  return fmt::format("{} {} of {} ({}%)", stage, amount(stage, done),
                     amount(stage, total), done * 100 / total);
}

} // namespace

ProgressView::ProgressView(bool quiet)
    : m_quiet(quiet), m_terminal(::isatty(STDERR_FILENO) == 1) {}

ProgressView::~ProgressView() {
  finish();
}

ktc_hooks ProgressView::hooks() {
  ktc_hooks hooks = KTC_HOOKS_INIT;
  hooks.progress = &ProgressView::on_progress;
  hooks.progress_userdata = this;
  hooks.cancelled = &CancelOnSignals::cancelled;
  return hooks;
}

void ProgressView::finish() {
  if (m_bar_open) {
    std::fputs("\n", stderr);
    m_bar_open = false;
  }
}

void ProgressView::on_progress(void* self,
                               const char* stage,
                               uint64_t done,
                               uint64_t total) {
  static_cast<ProgressView*>(self)->draw(stage, done, total);
}

void ProgressView::draw(const char* stage, uint64_t done, uint64_t total) {
  if (m_quiet || stage == nullptr) {
    return;
  }
  auto now = std::chrono::steady_clock::now();
  bool new_stage = m_stage != stage;
  bool complete = total != 0 && done >= total;
  auto interval = m_terminal ? k_bar_interval : k_plain_interval;
  if (!new_stage && !complete && now - m_last_draw < interval) {
    return;
  }
  if (!new_stage && complete && !m_terminal) {
    return;
  }
  m_last_draw = now;
  m_stage = stage;
  std::string text = describe(stage, done, total);
  if (!m_terminal) {
    fmt::print(stderr, "ktcache: {}\n", text);
    return;
  }
  constexpr int k_width = 30;
  std::string bar;
  if (total != 0) {
    auto filled =
        static_cast<int>(std::min<uint64_t>(done, total) * k_width / total);
    bar = fmt::format(" [{}{}]", std::string(filled, '#'),
                      std::string(k_width - filled, '.'));
  }
  if (new_stage && m_bar_open) {
    std::fputs("\n", stderr);
  }
  fmt::print(stderr, "\r\033[Kktcache: {}{}", text, bar);
  std::fflush(stderr);
  m_bar_open = true;
}

CancelOnSignals::CancelOnSignals() {
  struct sigaction action {};
  action.sa_handler = note_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

CancelOnSignals::~CancelOnSignals() {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

int CancelOnSignals::cancelled(void*) {
  return g_signal != 0 ? 1 : 0;
}

} // namespace ktc::cli
