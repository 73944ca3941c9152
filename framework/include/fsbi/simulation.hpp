// The simulation engine: θ from the prior, x from the simulator, in parallel, into an HDF5
// simulation file (docs/file-format.md), reproducibly and resumably.
//
// Row i of a run is a pure function of (seed, i): θ_i is drawn from the stream
// (seed, Stream::prior, i, attempt) and the simulator gets the stream
// (seed, Stream::simulator, i, attempt). The file is therefore identical for any thread count,
// batch size, and after a resume.
#pragma once

#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/progress.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fsbi {

// What happens to a simulation that fails (the plugin reports failure or throws) or returns a
// non-finite value. Every failure is counted and recorded (index, attempt, θ, message) whatever
// the policy; see docs/simulation.md for why failures that depend on θ bias score matching.
enum class FailurePolicy {
  abort,   // the first failure stops the run
  drop,    // leave the row out (the default), up to the failure budget
  redraw,  // draw a new θ for the slot (attempt + 1), deterministically, up to the budget
};
std::string_view to_string(FailurePolicy p);
FailurePolicy parse_failure_policy(std::string_view s);  // throws std::invalid_argument

struct SimulationSettings {
  std::uint64_t num_simulations = 0;  // N: simulation slots 0..N-1
  std::uint64_t seed = 0;
  int threads = 0;              // 0: every hardware thread
  std::uint64_t batch_size = 0; // simulations per pipeline item; 0: automatic
  FailurePolicy on_failure = FailurePolicy::drop;
  // The run aborts once failures exceed max_failure_rate · N (the failure budget).
  double max_failure_rate = 1e-3;
  std::uint32_t max_attempts = 100;  // redraw: attempts per slot before the run aborts
  ProgressMode progress = ProgressMode::automatic;
  bool resume = false;     // continue <output>.partial left by an interrupted run
  bool overwrite = false;  // replace an existing <output>
};

struct SimulationReport {
  std::string output;
  std::uint64_t requested = 0, rows = 0, failed = 0, redrawn = 0;
  std::uint64_t resumed_from = 0;  // slots already done when the run started (resume)
  double seconds = 0;
};

// The failure budget was exceeded (or a failure under FailurePolicy::abort); the message names the
// failing θ. The rows simulated so far are kept in <output>.partial.
class SimulationAborted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad settings, an unusable output path, or a .partial file that does not match the settings.
class SimulationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs the simulations and writes `output` atomically: the run writes `<output>.partial`,
// checkpoints it at least every half second (a run killed even with SIGKILL keeps every row up
// to its last checkpoint, and `resume` continues it), and renames it to `output` when done.
// `prior_source` says where the prior came from ("simulator default", "--prior").
SimulationReport run_simulations(const Simulator& simulator, const Prior& prior,
                                 const std::string& prior_source,
                                 const SimulationSettings& settings, const std::string& output);

// The path of the in-progress file of `output`.
std::string partial_path(const std::string& output);

// A simulation file read back.
using MatrixRowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
struct SimulationData {
  MatrixRowMajor theta;  // rows × d
  MatrixRowMajor x;      // rows × k
  std::vector<std::int64_t> index;  // slot of each row
  std::vector<std::string> parameter_names, data_names;
  std::string simulator_name, simulator_version, simulator_options, prior;
  std::string prior_source;  // where the prior came from; "sequential ..." for pooled rounds
  std::uint64_t seed = 0, requested = 0, failed = 0;
  std::string status;  // "complete", "running" (an interrupted run's .partial) or "aborted"
};

// Reads /simulations of an fsbi file (complete or partial: only the rows written so far).
// Throws SimulationError naming the file and what is wrong (not HDF5, no /simulations group, ...).
SimulationData read_simulations(const std::string& path);

}  // namespace fsbi
