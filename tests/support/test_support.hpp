// Shared helpers for fsbi's tests: scratch folders, running the real `fsbi` binary as a
// subprocess, and announcing seeds.
#pragma once

#include "fsbi/plugin.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/simulation.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fsbi::test {

// A fresh folder under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;   // exit status, or 128 + signal if killed by a signal
  std::string out;      // stdout
  std::string err;      // stderr
};

// Runs argv[0] with arguments, no shell, capturing stdout and stderr. `env` entries
// ("KEY=VALUE") are added to the inherited environment.
CommandResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// Runs the fsbi CLI built with the tests, with the bundled simulators on the plugin path.
CommandResult run_fsbi(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

// Starts the fsbi CLI with `args` without waiting for it (output inherited); for tests that kill
// a run part-way. A test failure (and pid 0) if it cannot be started.
pid_t spawn_fsbi(const std::vector<std::string>& args);

// SIGKILLs `pid` once `ready()` returns true (polled every 10 ms, for at most `timeout`) and
// `after` more has passed, and reaps it. True if it died by the signal, false if it had exited
// on its own first.
bool kill_when(pid_t pid, const std::function<bool()>& ready, std::chrono::milliseconds after,
               std::chrono::seconds timeout = std::chrono::seconds(300));

// kill_when `path` exists.
bool kill_once_exists(pid_t pid, const std::string& path, std::chrono::milliseconds after,
                      std::chrono::seconds timeout = std::chrono::seconds(300));

std::string cli_path();                     // the fsbi executable under test
std::string bundled_plugin_dir();          // where the bundled simulators are built
std::string fixture_plugin(const std::string& name);  // path of a test fixture plugin
std::string shared_dir();                   // ../shared beside the project (sbibm data)

// Simulates n pairs of a bundled simulator through the real plugin and engine into dir/name and
// reads them back; prior_spec "" keeps the simulator's default prior.
SimulationData simulate(const std::string& simulator, const std::string& dir, const std::string& name,
                        const std::string& prior_spec, std::uint64_t n, std::uint64_t seed,
                        const SimulatorOptions& options = {});
// simulate() of gaussian_linear.
SimulationData simulate_gaussian_linear(const std::string& dir, const std::string& name,
                                        const std::string& prior_spec, std::uint64_t n, std::uint64_t seed,
                                        const SimulatorOptions& options = {});

// The exact likelihood score of a task at pairs given one per column (θ d × n, x k × n).
using ExactScore = std::function<Eigen::MatrixXd(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& x)>;
// gaussian_linear's: (x − θ)/0.1.
Eigen::MatrixXd gaussian_linear_score(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& x);
// E‖ŝ − s‖² / E‖s‖² of a model's score against the exact one at the given pairs.
double relative_score_error(const ScoreModel& model, const Eigen::MatrixXd& theta, const Eigen::MatrixXd& x,
                            const ExactScore& exact);
// The same at simulated pairs (gaussian_linear's score unless given).
double relative_score_error(const ScoreModel& model, const SimulationData& pairs,
                            const ExactScore& exact = gaussian_linear_score);

// Prints "[seed] <what> = <seed>" so a failing run can be reproduced, and returns the seed.
std::uint64_t announce_seed(const std::string& what, std::uint64_t seed);

// The first data row of a CSV file with a header row (sbibm's observation.csv and
// true_parameters.csv); a test failure if the file cannot be opened.
std::vector<double> read_csv_row(const std::string& path);

// Simulates n rows at one θ (streams index_begin .. index_begin + n − 1, attempt 0) with a fresh
// instance of `sim`; returns x row-major (n × data_dim). A test failure if the call or any row
// fails (the message is the simulator's first error).
std::vector<double> simulate_at(const Simulator& sim, std::uint64_t seed, const std::vector<double>& theta,
                                std::size_t n, std::uint64_t index_begin = 0);

// The central-difference step for parameter k: `size`, or size·|θ_k| when `relative`.
struct DifferenceStep {
  double size;
  bool relative;
};

// Checks sim's analytic likelihood score at (theta, x) against central differences of log_lik:
// EXPECT_NEAR with tolerance rel_tol·max(floor, |cd|), and one printed line per component.
// Returns the worst |score − cd| / max(floor, |cd|).
double expect_score_matches_central_differences(const Simulator& sim, const std::vector<double>& theta,
                                                const std::vector<double>& x,
                                                const std::function<double(const std::vector<double>&)>& log_lik,
                                                DifferenceStep step, double rel_tol, double floor);

}  // namespace fsbi::test
