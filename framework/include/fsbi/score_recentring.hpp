// Recentring the learned score where the posterior is (docs/sampling.md, "Several observations").
//
// The likelihood score has mean zero under its own likelihood: E[s(θ, x) | θ] = 0 for every θ. A
// learned score ŝ has an error whose mean over x, m(θ) = E[ŝ(θ, x) − s(θ, x) | θ] = E[ŝ(θ, x) | θ],
// does not average away when n i.i.d. observations are composed: it moves the posterior mean by
// about n·Σ_post·m, while the posterior shrinks only as 1/n. Simulating one data set x̃_j at each
// of K posterior draws θ_j estimates m where the posterior is, as the mean of ŝ_u(u_j, x̃_j) in
// the unconstrained coordinates; Posterior::set_score_offset() then subtracts n times it from the
// composed score. The estimate's own noise moves the posterior mean by about √(n / K) posterior
// standard deviations.
#pragma once

#include "fsbi/plugin.hpp"
#include "fsbi/score_model.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fsbi {

// Bad input: a dimension mismatch, draws outside the training prior, too few simulations.
class ScoreRecentringError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ScoreRecentringSettings {
  std::uint64_t seed = 0;         // draw j simulates with the stream (seed, Stream::simulator, first_index + j)
  std::uint64_t first_index = 0;  // e.g. the training simulations' count, so that both come from one stream
  int threads = 0;                // 0: all cores; the result does not depend on it
};

struct ScoreRecentring {
  Eigen::MatrixXd theta;           // d × K: the draws whose simulation succeeded
  Eigen::MatrixXd x;               // k × K: their data sets
  Eigen::VectorXd offset_u;        // d: mean of ŝ_u(u_j, x̃_j), the estimate of m in u
  Eigen::VectorXd standard_error;  // d: its standard error (the pairs' sd / √K)
  std::uint64_t failed = 0;        // simulations that failed or were not finite (dropped)
  std::string first_error;
};

// Fewer successful simulations than this make the estimate too noisy to use.
inline constexpr Eigen::Index min_recentring_simulations = 20;

// theta: d × K posterior draws in θ, inside the interior of the model's training prior. Simulates
// one data set at each (in parallel) and averages the model's score in u over the pairs. Throws
// ScoreRecentringError for a dimension mismatch, a draw outside the training prior, or fewer than
// min_recentring_simulations successful simulations.
ScoreRecentring estimate_score_offset(const ScoreModel& model, const Simulator& simulator,
                                      const Eigen::MatrixXd& theta, const ScoreRecentringSettings& settings);

}  // namespace fsbi
