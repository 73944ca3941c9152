// MCMC and SMC samplers for posteriors in unconstrained coordinates u ∈ R^d
// (docs/sampling.md).
//
// All samplers run many chains; the chains are split into fixed blocks evaluated in parallel
// (oneTBB), and each block's target evaluations are batched (one network call for the block's
// chains). Chain c draws its randomness from CounterRng(seed, Stream::sampling, c, step), so
// results are identical for any thread count.
//
// Batch layout: one point per COLUMN (d × n).
#pragma once

#include "fsbi/progress.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fsbi {

// The posterior in u: log p(u) = log_prior(u) + log_likelihood(u) + const.
// Every function takes a batch d × n and must be safe to call from several threads at once.
struct SamplingTarget {
  int dim = 0;
  std::function<Eigen::RowVectorXd(const Eigen::MatrixXd&)> log_prior;        // log π_u
  std::function<Eigen::MatrixXd(const Eigen::MatrixXd&)> grad_log_prior;      // ∇u log π_u
  // Σ_i ∇u log p(x_i | u): the (learned) likelihood score summed over i.i.d. observations.
  std::function<Eigen::MatrixXd(const Eigen::MatrixXd&)> grad_log_likelihood;
  // Σ_i log p(x_i | u) + const (energy models: −Σ_i E(u, x_i)); empty for score-only models, which
  // then support only the unadjusted Langevin sampler.
  std::function<Eigen::RowVectorXd(const Eigen::MatrixXd&)> log_likelihood;
  // Draws for chain/particle c of `n` from the prior in u: column c depends only on (seed, c).
  std::function<Eigen::MatrixXd(std::uint64_t seed, Eigen::Index n)> sample_prior;
  // Optional: per column, whether the point lies in the region the model was trained on. Chains
  // that leave it are reported (SampleResult::escaped) and their draws are not returned.
  // MCMC: a chain with any kept draw outside is dropped whole. SMC: particles outside are removed
  // before the rest are grouped. Called on the kept draws only, so it should be cheap.
  std::function<std::vector<bool>(const Eigen::MatrixXd&)> in_trusted_region;
};

// ULA's automatic step in preconditioned units: ε = ula_default_step / √λ̂, with λ̂ the 90 %
// quantile of the local curvature ‖M^{1/2}Δ∇log p‖ / ‖M^{-1/2}Δu‖ seen in warm-up. On a Gaussian
// with exact preconditioning (λ̂ = 1) the stationary variance is σ²/(1 − ε²/4): +1 % at 0.2.
inline constexpr double ula_default_step = 0.2;

// Diagnostic thresholds (docs/sampling.md): a warning when any parameter's R-hat exceeds
// rhat_warning_threshold, or its bulk ESS is below ess_warning_per_chain × chains (MCMC) or
// ess_warning_smc (SMC). For converged chains R-hat − 1 ≈ 1/(2 · ESS per split chain), so
// R-hat < 1.01 itself needs roughly 100 effective draws per chain.
inline constexpr double rhat_warning_threshold = 1.01;
inline constexpr double ess_warning_per_chain = 100;
inline constexpr double ess_warning_smc = 400;
// Many short chains (at least many_chains_min chains of fewer than many_chains_max_draws draws,
// MCMC): ESS from the spread of the chain means and a drift test of warm-up instead (R-hat is
// reported but not warned on; docs/sampling.md#many-short-chains).
inline constexpr double many_chains_min = 100;
inline constexpr double many_chains_max_draws = 100;
inline constexpr double drift_warning_z = 4.5;

enum class SamplerMethod {
  ula,   // preconditioned unadjusted Langevin: score only (vector models); biased by the step
  mala,  // Metropolis-adjusted Langevin: exact for the model (needs log_likelihood)
  smc,   // tempering from the prior to the posterior with importance weights, resampling and
         // MALA moves (needs log_likelihood)
};
std::string to_string(SamplerMethod m);
SamplerMethod parse_sampler_method(const std::string& s);  // throws std::invalid_argument

struct SamplerSettings {
  SamplerMethod method = SamplerMethod::mala;
  // Many short chains: a chain rarely crosses between separated modes, so the modes' weights come
  // from the starting points and need many of them; and kept draws thinned so that consecutive
  // ones are nearly independent (repeated MALA states are what a C2ST classifier detects first).
  // See docs/sampling.md#defaults.
  int chains = 2000;          // MCMC chains. SMC: the final particles are split into this many
                              // groups of particles/chains draws (a remainder is dropped)
  int draws = 500;            // kept draws per chain
  int warmup = 500;           // adaptation steps per chain (discarded)
  int thin = 10;
  double step_size = 0;       // ε in preconditioned units (the step in u_j is ε·√M_j).
                              // 0: automatic (dual averaging to target_acceptance for MALA; the
                              // curvature rule for ULA, see ula_default_step; acceptance-driven
                              // for SMC moves). > 0: fixed.
  double target_acceptance = 0.574;
  int particles = 4096;       // SMC (`draws` and `warmup` do not apply)
  double ess_threshold = 0.5; // SMC: resample when ESS/N falls below this
  int smc_moves = 10;         // SMC: MALA moves per temperature
  std::uint64_t seed = 0;
  int threads = 0;            // > 0: limit oneTBB to this many threads; 0: leave it as it is
  ProgressMode progress = ProgressMode::automatic;
  // Fixed diagonal preconditioner M (d entries, > 0), e.g. a posterior variance from an earlier
  // run; empty: M is estimated in warm-up from the spread of all chains (MCMC) or set to the
  // particles' spread at each temperature (SMC, which ignores this field).
  Eigen::VectorXd preconditioner;
};

// What is wrong with the settings on their own (not against a target or starting points), as
// the message a user sees; empty when nothing is. run_sampler refuses such settings, and the CLI
// checks them before `fsbi run` spends its budget on simulating and training.
std::string sampler_settings_problem(const SamplerSettings& st);

// Escaped chains are removed from `chains` and from every per-chain vector below, so those stay
// aligned with `chains`; `escaped` keeps the original chain indices. All indices are 0-based.
struct SampleResult {
  // chains[c] is draws × d (row t is draw t of chain c), in u. SMC: `chains` groups of
  // particles/chains equally weighted particles each — not Markov chains (docs/sampling.md).
  std::vector<Eigen::MatrixXd> chains;
  // Per chain: mean acceptance probability after warm-up (ULA: 1; SMC: of the moves at β = 1),
  // final step size ε in preconditioned units.
  std::vector<double> acceptance_rate, step_size;
  // Per chain and draw: log density (up to a constant) where available, else NaN.
  std::vector<Eigen::VectorXd> log_density;
  Eigen::VectorXd rhat;  // per parameter (rank-normalised split R-hat, Vehtari et al. 2021)
  Eigen::VectorXd ess;   // per parameter (bulk effective sample size; with many short chains
                         // C · var(draws) / var(chain means), see many_chains_min)
  // Chains dropped for leaving the trusted region (any kept draw outside) or diverging (ULA: a
  // non-finite state or score).
  std::vector<int> escaped;
  std::vector<std::string> warnings;  // e.g. "R-hat 1.08 for parameter 1 > 1.01"
  Eigen::VectorXd preconditioner;      // final diagonal M (d)
  std::vector<double> temperatures;    // SMC: the β ladder, 0 … 1; empty for MCMC
  int removed_particles = 0;           // SMC: particles dropped outside the trusted region
};

// Runs the sampler from `initial` (d × chains; SMC ignores it and starts from the prior).
// Throws std::invalid_argument for inconsistent settings or a target that lacks what the method
// needs (MALA and SMC need log_prior and log_likelihood, SMC sample_prior).
SampleResult run_sampler(const SamplingTarget& target, const Eigen::MatrixXd& initial,
                         const SamplerSettings& settings);

// Diagnostics over chains (each draws × d): rank-normalised split R-hat and bulk ESS per
// parameter, as in Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021).
Eigen::VectorXd split_rhat(const std::vector<Eigen::MatrixXd>& chains);
Eigen::VectorXd effective_sample_size(const std::vector<Eigen::MatrixXd>& chains);

}  // namespace fsbi
