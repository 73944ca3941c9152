#include "crash_context.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace fsbi {
namespace {
char g_file[4096];
std::atomic<std::uint64_t> g_rows{0};
std::atomic<bool> g_active{false};

void write_str(const char* s) {
  const ssize_t r = ::write(2, s, std::strlen(s));
  (void)r;
}

void on_fatal_signal(int sig) {
  CrashContext::report(sig);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}
}  // namespace

void CrashContext::set(const std::string& partial_file, std::uint64_t rows) {
  g_active.store(false);
  const std::size_t n = std::min(partial_file.size(), sizeof(g_file) - 1);
  std::memcpy(g_file, partial_file.data(), n);
  g_file[n] = '\0';
  g_rows.store(rows);
  g_active.store(true);
}

void CrashContext::clear() { g_active.store(false); }

void CrashContext::report(int sig) {
  const char* name = sig == SIGSEGV ? "SIGSEGV (invalid memory access)"
                     : sig == SIGBUS ? "SIGBUS"
                     : sig == SIGFPE ? "SIGFPE (arithmetic error)"
                     : sig == SIGILL ? "SIGILL"
                     : sig == SIGABRT ? "SIGABRT (abort)"
                                      : "a fatal signal";
  char buf[5200];
  if (g_active.load()) {
    std::snprintf(buf, sizeof buf,
                  "\nfsbi: error: the process crashed with %s, most likely inside the simulator "
                  "plugin. The %llu rows checkpointed so far are safe in %s; fix the simulator "
                  "(try it alone with --threads 1 -n 1) and continue the run with --resume.\n",
                  name, static_cast<unsigned long long>(g_rows.load()), g_file);
  } else {
    std::snprintf(buf, sizeof buf, "\nfsbi: error: the process crashed with %s.\n", name);
  }
  write_str(buf);
}

void install_crash_handlers() {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) {
    struct sigaction sa {};
    sa.sa_handler = &on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace fsbi
