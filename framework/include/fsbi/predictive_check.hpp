// Posterior predictive check (docs/diagnostics.md): does the posterior reproduce the observation?
//
// A learned score can be wrong where the posterior is and still give a narrow, well-mixed
// posterior that R-hat and ESS cannot fault. The simulator can: data sets simulated at posterior
// draws must look like the observation if the posterior is right. For replicate data sets
// x̃_j ~ p(x | θ_j), θ_j from the posterior, each observation x_i is placed among them by its
// Mahalanobis distance from the replicates' mean (in the replicates' own correlation, data values
// standardised); p_i is the share of replicates at least as far. A posterior predictive p-value is
// conservative (it leans towards 1 rather than being uniform when the posterior is right), so a
// small one is strong evidence that the posterior is wrong. It cannot see a posterior that is too wide.
#pragma once

#include "fsbi/plugin.hpp"
#include "fsbi/table_io.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi {

// Bad input to the check: no draws, a dimension mismatch, too few replicates simulated.
class PredictiveCheckError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PredictiveCheckSettings {
  std::uint64_t seed = 0;  // replicate j simulates with the stream (seed, Stream::simulator, j)
  int threads = 0;         // 0: all cores; the result does not depend on it
  double alarm = 0.01;     // flag when min_i p_i · n < alarm (Bonferroni over the n observations)
};

struct PredictiveCheck {
  Eigen::MatrixXd replicates;        // k × m: the replicate data sets that simulated (failed ones dropped)
  std::vector<Eigen::Index> draw;    // m: the column of theta each replicate was simulated at
  std::uint64_t failed = 0;          // replicates whose simulation failed or was not finite
  std::string first_error;           // the first failure's message
  Eigen::VectorXd distance;          // n: squared Mahalanobis distance of each observation
  double replicate_median = 0;       // the replicates' own median squared distance, for scale
  Eigen::VectorXd p_value;           // n: (1 + #replicates at least as far) / (m + 1)
  // k × n: two-sided per data value, 2·(1 + #replicates beyond it on its side) / (m + 1), capped at 1
  // (ties count half): which data values are out of place.
  Eigen::MatrixXd marginal_p;
  std::vector<int> constant;         // data values every replicate has the same value for (left out)
  bool flagged = false;              // min_i p_i · n < alarm
  std::vector<std::string> notes;    // why an observation is flagged beyond its distance, e.g. a constant
};

// theta: d × m posterior draws (inside the simulator's domain); observations: n × k, one i.i.d.
// observation per row. Simulates one replicate at each draw, in parallel. Throws
// PredictiveCheckError for a dimension mismatch or when fewer than 20 replicates (or fewer than
// k + 2) simulate.
PredictiveCheck posterior_predictive_check(const Simulator& simulator, const Eigen::MatrixXd& theta,
                                           const Table& observations, const PredictiveCheckSettings& settings);

}  // namespace fsbi
