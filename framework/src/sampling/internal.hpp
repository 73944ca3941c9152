// Pieces shared by the samplers (private to the library; docs/sampling.md describes the methods).
//
// Layout: one chain/particle per COLUMN. Columns are split into fixed blocks (the split depends
// only on the number of columns, never on the thread count); a block's target evaluations are one
// batched call, and blocks run in parallel. Every random number of column c at step `attempt`
// comes from CounterRng(seed, Stream::sampling, c, attempt), so results do not depend on threads.
#pragma once

#include "fsbi/sampler.hpp"

#include <Eigen/Core>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace fsbi::sampling {

// Attempt numbers (the RNG counter's second word) reserved for work that is not a regular step.
inline constexpr std::uint64_t probe_attempt_base = std::uint64_t{1} << 48;  // step-size probes
// RNG index (the counter's first word) for draws that belong to no chain (SMC resampling).
inline constexpr std::uint64_t global_rng_index = std::uint64_t{1} << 62;

// Fixed partition of n columns into blocks of `size` (the last may be shorter).
struct Blocks {
  explicit Blocks(Eigen::Index n_columns)
      : n(n_columns), size(std::clamp<Eigen::Index>((n_columns + 31) / 32, 4, 64)) {}
  Eigen::Index count() const { return (n + size - 1) / size; }
  Eigen::Index begin(Eigen::Index b) const { return b * size; }
  Eigen::Index length(Eigen::Index b) const { return std::min(size, n - b * size); }
  Eigen::Index n, size;
};

// Runs f(begin, length) for every block, in parallel. Exceptions propagate to the caller.
template <class F>
void for_each_block(const Blocks& blocks, F&& f) {
  tbb::parallel_for(
      tbb::blocked_range<Eigen::Index>(0, blocks.count(), 1),
      [&](const tbb::blocked_range<Eigen::Index>& r) {
        for (Eigen::Index b = r.begin(); b != r.end(); ++b) f(blocks.begin(b), blocks.length(b));
      },
      tbb::simple_partitioner());
}

// What is known at a set of points (d × n). log_prior / log_lik are NaN where not evaluated.
struct States {
  Eigen::MatrixXd u, grad_prior, grad_lik;
  Eigen::RowVectorXd log_prior, log_lik;

  Eigen::Index size() const { return u.cols(); }
  States columns(Eigen::Index begin, Eigen::Index length) const;
  void set_columns(Eigen::Index begin, const States& from);
  void set_column(Eigen::Index dst, const States& from, Eigen::Index src);
  States gather(const std::vector<Eigen::Index>& index) const;
};

// Evaluates the target at u (d × n): both gradients, and the log densities if `with_log`.
// Checks the shapes the target returns.
States evaluate(const SamplingTarget& target, Eigen::MatrixXd u, bool with_log);

// log π + β log L, with β = 0 meaning the likelihood is ignored (even where it is −∞).
inline double tempered(double log_prior, double log_lik, double beta) {
  return beta == 0 ? log_prior : log_prior + beta * log_lik;
}

// Diagonal preconditioner M (a covariance-like scale: the step in coordinate j is ε·√M_j).
struct Preconditioner {
  explicit Preconditioner(Eigen::VectorXd m_) : m(std::move(m_)), sqrt_m(m.cwiseSqrt()) {}
  Eigen::VectorXd m, sqrt_m;
};

// One preconditioned Langevin proposal for columns [begin, begin + length) of `s`, targeting
// π·L^β, with noise from (seed, column, attempt):
//     u' = u + (ε²/2) M ∇log p_β(u) + ε M^{1/2} ξ.
// metropolis: MALA accept/reject; accept_prob[c] receives min(1, α) (0 for a non-finite proposal).
// Otherwise (ULA): the move is taken unless the proposal is non-finite or (guard > 0)
// ε²·κ_c > guard; kappa[c] receives the local curvature estimate
//     κ_c = ‖M^{1/2}(g' − g)‖ / ‖M^{-1/2}(u' − u)‖   (NaN if not finite),
// accept_prob[c] is 1 for a move and 0 otherwise.
struct LangevinStep {
  const SamplingTarget* target;
  const Preconditioner* pc;
  double eps = 0, beta = 1;
  std::uint64_t seed = 0, attempt = 0;
  bool metropolis = true;
  bool with_log = true;  // ULA: also evaluate log densities at the new points
  double guard = 0;      // ULA only
  bool move = true;      // false: only measure (probe), never change the states
};
void langevin_block(const LangevinStep& step, States& s, Eigen::Index begin, Eigen::Index length,
                    double* accept_prob, double* kappa);

// Empirical q-quantile (0 ≤ q ≤ 1) of the finite values, NaN if there are none.
double quantile_finite(std::vector<double> v, double q);

// Diagnostics internals (diagnostics.cpp).
double normal_quantile(double p);
Eigen::MatrixXd split_chains(const std::vector<Eigen::MatrixXd>& chains, Eigen::Index param);
Eigen::MatrixXd rank_normalise(const Eigen::MatrixXd& x);
double rhat_basic(const Eigen::MatrixXd& x);
double ess_basic(const Eigen::MatrixXd& x);

// What a sampler hands back before escape checks and diagnostics.
struct RawRun {
  std::vector<Eigen::MatrixXd> chains;         // draws × d each
  std::vector<Eigen::VectorXd> log_density;    // draws each
  std::vector<double> acceptance_rate, step_size;
  std::vector<int> diverged_at;                // per chain: step of divergence, −1 if none
  Eigen::VectorXd preconditioner;
  std::vector<double> temperatures;
  int removed_particles = 0;
  std::vector<std::string> warnings;
};

RawRun run_langevin_chains(const SamplingTarget& target, const Eigen::MatrixXd& initial,
                           const SamplerSettings& settings);  // ULA and MALA
RawRun run_smc(const SamplingTarget& target, const SamplerSettings& settings);

}  // namespace fsbi::sampling
