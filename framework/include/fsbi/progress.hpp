// Progress of long work: a redrawn line on a terminal, plain log lines otherwise, nothing when
// quiet. Called from one thread (the pipeline's in-order stage, the training loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace fsbi {

enum class ProgressMode {
  automatic,  // terminal line if stderr is a TTY, log lines otherwise
  terminal,
  log,
  quiet,
};

class ProgressReporter {
 public:
  // `what` names the work ("simulating", "training"), `unit` the items ("sim", "epoch").
  ProgressReporter(std::string what, std::string unit, std::uint64_t total, ProgressMode mode,
                   std::FILE* out = stderr);
  ~ProgressReporter();

  // Sets the number of items done (monotone); prints if enough time has passed.
  // `first` items were already done before this run (a resume) and do not count for the rate.
  void update(std::uint64_t done, const std::string& detail = {});
  void set_resumed_from(std::uint64_t first) { resumed_from_ = first; }
  // Prints the final line.
  void finish(const std::string& detail = {});

  double elapsed_seconds() const;

 private:
  void print(bool final_line, const std::string& detail);

  std::string what_, unit_;
  std::uint64_t total_, done_ = 0, resumed_from_ = 0;
  ProgressMode mode_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool printed_terminal_ = false, finished_ = false;
};

// "1:02:03" / "2:03" / "4.2 s"
std::string format_duration(double seconds);
// "12.3k" style count
std::string format_count(double value);

}  // namespace fsbi
