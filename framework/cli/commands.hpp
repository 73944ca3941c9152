// The `fsbi` subcommands. Each takes its own arguments (after the subcommand name) and returns
// the process exit code; errors are thrown and reported once, in main().
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi::cli {

// Exit codes (docs/cli.md).
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;          // a run failed: bad input file, plugin error, ...
inline constexpr int exit_usage = 2;          // bad command line
inline constexpr int exit_sim_aborted = 3;    // simulations failed beyond the failure budget
inline constexpr int exit_check_failed = 4;   // fsbi check: the posterior does not reproduce the observation

// A command-line mistake: reported with a pointer to --help, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Args = std::vector<std::string>;

int cmd_simulate(const Args& args);
int cmd_plugins(const Args& args);
int cmd_info(const Args& args);
int cmd_train(const Args& args);
int cmd_score(const Args& args);
int cmd_sample(const Args& args);
int cmd_run(const Args& args);
int cmd_plot(const Args& args);
int cmd_mle(const Args& args);
int cmd_fisher(const Args& args);
int cmd_compress(const Args& args);
int cmd_check(const Args& args);

}  // namespace fsbi::cli
