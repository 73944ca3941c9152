// What a fatal-signal handler should tell the user if a simulator crashes the process: which
// in-progress file holds the rows written so far. Set by the engine at each checkpoint; read
// from a signal handler, so it is plain static storage, no allocation.
#pragma once

#include <cstdint>
#include <string>

namespace fsbi {

struct CrashContext {
  static void set(const std::string& partial_file, std::uint64_t rows_checkpointed);
  static void clear();
  // Writes the user-facing crash message for `signal_number` to fd 2. Async-signal-safe.
  static void report(int signal_number);
};

// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that call
// CrashContext::report and then die with the same signal (so the exit status says so).
void install_crash_handlers();

}  // namespace fsbi
