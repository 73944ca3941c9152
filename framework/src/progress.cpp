#include "fsbi/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace fsbi {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f} s", s);
  const auto total = static_cast<long long>(std::llround(s));
  const long long h = total / 3600, m = (total / 60) % 60, sec = total % 60;
  return h > 0 ? fmt::format("{}:{:02}:{:02}", h, m, sec) : fmt::format("{}:{:02}", m, sec);
}

std::string format_count(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  if (v >= 100) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3g}", v);
}

ProgressReporter::ProgressReporter(std::string what, std::string unit, std::uint64_t total,
                                   ProgressMode mode, std::FILE* out)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), mode_(mode), out_(out),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {
  if (mode_ == ProgressMode::automatic)
    mode_ = isatty(fileno(out_)) ? ProgressMode::terminal : ProgressMode::log;
}

ProgressReporter::~ProgressReporter() {
  // An interrupted terminal line must not swallow the error message that follows.
  if (mode_ == ProgressMode::terminal && printed_terminal_ && !finished_) std::fputc('\n', out_);
}

double ProgressReporter::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressReporter::update(std::uint64_t done, const std::string& detail) {
  done_ = done;
  if (mode_ == ProgressMode::quiet) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  const double interval = mode_ == ProgressMode::terminal ? 0.1 : 10.0;
  if (since < interval) return;
  last_print_ = now;
  print(false, detail);
}

void ProgressReporter::finish(const std::string& detail) {
  if (finished_) return;
  finished_ = true;
  if (mode_ == ProgressMode::quiet) return;
  print(true, detail);
}

void ProgressReporter::print(bool final_line, const std::string& detail) {
  const double t = elapsed_seconds();
  const double rate = t > 0 ? static_cast<double>(done_ - resumed_from_) / t : 0.0;
  const double left = total_ > done_ ? static_cast<double>(total_ - done_) : 0.0;
  const double pct = total_ ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0;
  std::string line = fmt::format("{} {}/{} ({:.1f}%) {} {}/s", what_, done_, total_, pct,
                                 format_count(rate), unit_);
  line += final_line ? fmt::format(" in {}", format_duration(t))
                     : fmt::format(" ETA {}", rate > 0 ? format_duration(left / rate) : "?");
  if (!detail.empty()) line += "  " + detail;
  if (mode_ == ProgressMode::terminal) {
    constexpr int width = 24;
    const int filled = static_cast<int>(width * pct / 100.0);
    const std::string bar = std::string(static_cast<std::size_t>(filled), '=') +
                            std::string(static_cast<std::size_t>(width - filled), ' ');
    std::fprintf(out_, "\r\033[K[%s] %s%s", bar.c_str(), line.c_str(), final_line ? "\n" : "");
    printed_terminal_ = !final_line;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace fsbi
