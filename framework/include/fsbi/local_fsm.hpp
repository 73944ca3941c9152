// Local Fisher score matching (Khoo, Wang, Liu & Beaumont 2025), maximum likelihood by
// stochastic ascent on the fitted score, and Fisher information from score samples.
//
// Local FSM at θ_t: draw m proposals u_j ~ N(u_t, diag σ²) in the prior's unconstrained
// coordinates u = T⁻¹(θ) (transform.hpp; u = θ for Gaussian priors), simulate r data sets at each
// θ_j = T(u_j), and fit S_W(x) = Wᵀφ(x) by ridge least squares of (u_j − u_t)/σ² on features φ(x).
// The least-squares optimum is E[(u − u_t)/σ² | x] = ∇_{u_t} log p̃_σ(x | u_t), the score of the
// σ-smoothed likelihood p̃_σ(x|u_t) = ∫ N(u; u_t, σ²) p(x|T(u)) du, projected on the span of φ.
// Simulating at jittered u (never θ) keeps every simulation inside the prior's support.
//
// Everything random is a pure function of (seed, index): proposal j of a call with first index
// i0 uses CounterRng(seed, Stream::local, i0 + j), its r data sets the simulator streams
// (seed, Stream::simulator, i0·r + j·r + c). Results do not depend on the thread count.
// docs/mle.md explains the method, the options and their defaults.
#pragma once

#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/progress.hpp"
#include "fsbi/transform.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fsbi {

class ScoreModel;

// Bad input to local FSM, MLE or Fisher estimation (θ outside the prior's support, σ ≤ 0, a
// dimension mismatch, too few simulations), or a least-squares system too ill-conditioned to
// solve. The message names the input and the fix.
class LocalFsmError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// ---- Simulating at given parameters ----------------------------------------------------------

struct SimulatedRows {
  Eigen::MatrixXd x;              // k × n, one data set per column (NaN in failed columns)
  std::vector<std::uint8_t> ok;   // n: 1 simulated, 0 failed or non-finite
  std::uint64_t failed = 0;
  std::string first_error;        // message of the first failure
};

// Simulates one data set per column of `theta` (d × n, inside the simulator's domain) in
// parallel on `threads` worker threads (0: all), column i with the stream
// (seed, Stream::simulator, first_index + i). Failures are reported in `ok`, never thrown.
SimulatedRows simulate_at(const Simulator& simulator, const Eigen::MatrixXd& theta, std::uint64_t seed,
                          std::uint64_t first_index, int threads);

// The columns of `rows` that simulated, in order: rows.x(Eigen::all, ok_column_indices(rows)) is
// their data.
std::vector<Eigen::Index> ok_column_indices(const SimulatedRows& rows);

// ---- Ridge least squares ---------------------------------------------------------------------

struct RidgeSettings {
  double ridge = 1e-8;           // λ added to the diagonal of the normalised Gram matrix
  double warn_condition = 1e7;   // condition number above which a warning is reported
  double max_condition = 1e10;   // condition number above which the fit is refused
};

struct RidgeFit {
  Eigen::MatrixXd coefficients;  // p × d: targets ≈ features · coefficients
  double condition = 0;          // of the regularised normal equations G + λI
  std::vector<std::string> warnings;
};

// Solves min ‖Φ W − Y‖² + N·λ‖D W‖² for Φ (N × p), Y (N × d): the normal equations
// (ΦᵀΦ/N + λ I) W = ΦᵀY/N by Cholesky (Eigen::LLT), with the condition number of the left side
// from its eigenvalues (Eigen::SelfAdjointEigenSolver). The caller scales the columns of Φ to
// comparable size (fit_local_score standardises them), so λ and the thresholds are relative.
// Throws LocalFsmError when N ≤ p, when a value is not finite, or when the condition number
// exceeds max_condition (or Cholesky fails); reports a warning above warn_condition.
RidgeFit ridge_least_squares(const Eigen::MatrixXd& features, const Eigen::MatrixXd& targets,
                             const RidgeSettings& settings = {});

// ---- Features and the local score fit ----------------------------------------------------------

enum class LocalFeatures {
  linear,     // φ(x) = (1, x)
  quadratic,  // φ(x) = (1, x, x²) elementwise squares (a scale parameter's score is quadratic)
  learned,    // φ(x) = (1, s(θ_t, x)) with s a trained ScoreModel (semi-amortised)
};
std::string_view to_string(LocalFeatures f);
LocalFeatures parse_local_features(std::string_view s);  // throws LocalFsmError

struct LocalFsmSettings {
  std::uint64_t num_parameters = 1000;  // m proposals u_j ~ N(u_t, σ²)
  std::uint64_t replicates = 1;         // r data sets simulated at each proposal
  Eigen::VectorXd sigma;                // proposal standard deviation in u, one per parameter (or one for all)
  LocalFeatures features = LocalFeatures::linear;
  const ScoreModel* model = nullptr;    // for LocalFeatures::learned
  RidgeSettings ridge;
  std::uint64_t seed = 0;
  std::uint64_t first_index = 0;        // index of proposal 0 (callers give each fit its own range)
  int threads = 0;
  double max_failure_rate = 0.01;       // failed simulations beyond this fraction abort the fit
};

// A fitted local score S_W(x) ≈ ∇_u log p̃_σ(x | u_t) at the centre θ_t.
class LocalScoreFit {
 public:
  // Features of data x (k × n) → p × n (standardised with the fit's column means and scales).
  Eigen::MatrixXd features(const Eigen::MatrixXd& x) const;
  // S_W(x) in unconstrained coordinates u (d × n).
  Eigen::MatrixXd score_u(const Eigen::MatrixXd& x) const;
  // The same in θ: s_θ = s_u / (dθ/du) at θ_t.
  Eigen::MatrixXd score_theta(const Eigen::MatrixXd& x) const;

  // Fisher information of the smoothed likelihood in u, F̃ = mean over the fit's own simulations
  // of S_W S_Wᵀ (d × d), and the smoothing correction C = (I − F̃Σ)⁻¹, Σ = diag σ²: smoothing a
  // Gaussian likelihood of Fisher information F by N(0, Σ) gives F̃ = (F⁻¹ + Σ)⁻¹ and the smoothed
  // score s̃ = F̃ F⁻¹ s, so s = C s̃ and F = C F̃ exactly for a locally Gaussian likelihood (the
  // O(σ²) bias is removed otherwise). Eigenvalues of Σ^½F̃Σ^½ are capped at 0.9 (with a warning).
  const Eigen::MatrixXd& smoothed_fisher_u() const { return smoothed_fisher_u_; }
  const Eigen::MatrixXd& correction() const { return correction_; }
  // Largest eigenvalue of Σ^½F̃Σ^½ before the cap (≈ σ²F/(1 + σ²F) for a Gaussian likelihood).
  double smoothing_ratio() const { return smoothing_ratio_; }

  const Eigen::VectorXd& theta() const { return theta_; }
  const Eigen::VectorXd& u() const { return u_; }
  const Eigen::VectorXd& sigma() const { return sigma_; }
  const Eigen::VectorXd& jacobian() const { return jacobian_; }  // dθ/du at θ_t
  LocalFeatures feature_kind() const { return kind_; }
  const Eigen::MatrixXd& coefficients() const { return fit_.coefficients; }
  double condition() const { return fit_.condition; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  std::uint64_t simulations() const { return simulations_; }  // data sets simulated (incl. failed)
  std::uint64_t failed() const { return failed_; }
  // Explained fraction of the targets' variance, per parameter (in-sample R²).
  const Eigen::VectorXd& r_squared() const { return r_squared_; }

 private:
  friend LocalScoreFit fit_local_score(const Simulator&, const Prior&, const Eigen::VectorXd&,
                                       const LocalFsmSettings&);
  Eigen::MatrixXd raw_features(const Eigen::MatrixXd& x) const;

  LocalFeatures kind_ = LocalFeatures::linear;
  const ScoreModel* model_ = nullptr;
  Eigen::VectorXd theta_, u_, sigma_, jacobian_;
  Eigen::VectorXd feature_mean_, feature_scale_;  // of the non-intercept raw features
  RidgeFit fit_;
  Eigen::MatrixXd smoothed_fisher_u_, correction_;
  Eigen::VectorXd r_squared_;
  double smoothing_ratio_ = 0;
  std::vector<std::string> warnings_;
  std::uint64_t simulations_ = 0, failed_ = 0;
};

// Fits S_W at θ_t (inside the interior of the prior's support; the prior fixes the coordinates).
// Throws LocalFsmError for θ_t outside the support, σ ≤ 0 or of the wrong length, a dimension
// mismatch between simulator, prior and model, too few simulations for the features, or an
// ill-conditioned system; SimulationAborted when more than max_failure_rate of the simulations fail.
LocalScoreFit fit_local_score(const Simulator& simulator, const Prior& prior, const Eigen::VectorXd& theta_t,
                              const LocalFsmSettings& settings);

// ---- Fisher information from score samples -------------------------------------------------------

struct FisherEstimate {
  Eigen::MatrixXd fisher;          // d × d: mean of s sᵀ over the samples
  Eigen::MatrixXd standard_error;  // d × d: Monte-Carlo standard error of each entry
  Eigen::VectorXd mean_score;      // d: should be ≈ 0 (a check of the score)
  std::uint64_t samples = 0;
  // sqrt(diag F⁻¹ / n): the Cramér–Rao bound on the standard deviation of an unbiased estimator
  // from n i.i.d. observations. NaN when F is not positive definite.
  Eigen::VectorXd cramer_rao(double n_observations) const;
};

// F = mean_j s_j s_jᵀ over the columns of `scores` (d × N), with standard errors sd(s_a s_b)/√N.
FisherEstimate fisher_from_scores(const Eigen::MatrixXd& scores);

// Fisher information at θ from a local fit: S = C·S_W (σ-corrected) evaluated on `fresh`
// simulations at θ itself (seed derived from settings.seed), F = mean S Sᵀ in θ coordinates.
// With settings.sigma empty, σ is chosen: a pilot fit (a quarter of the proposals) at
// σ₀ = 0.1 × the prior's scale in u estimates F, then σ_j = 1/sqrt(F_jj) — where σ²F̃ ≈ ½ and the
// corrected estimate is least noisy for a Gaussian likelihood (docs/mle.md).
struct LocalFisher {
  FisherEstimate estimate;
  Eigen::VectorXd sigma;       // σ of the final fit
  LocalScoreFit fit;
  std::vector<std::string> warnings;
  std::uint64_t simulations = 0, failed = 0;
};
LocalFisher local_fisher(const Simulator& simulator, const Prior& prior, const Eigen::VectorXd& theta,
                         LocalFsmSettings settings, std::uint64_t fresh);

// Fisher information at θ from a trained model over n fresh simulations x ~ p(·|θ) (streams
// (seed, Stream::simulator, i)). θ must lie inside the model's training prior; the simulator must
// match the model's dimensions. Two estimators of the same F:
//  - jacobian (default): F = −mean ∂s(θ, x)/∂θ (symmetrised; central differences of the model's
//    score). A score error e adds only −E[∂e/∂θ] — first order, either sign;
//  - outer: F = mean s sᵀ. A score error adds E[e eᵀ] ⪰ 0: it always inflates F (docs/mle.md).
enum class FisherEstimator { jacobian, outer };
FisherEstimator parse_fisher_estimator(const std::string& s);  // throws LocalFsmError
FisherEstimate model_fisher(const ScoreModel& model, const Simulator& simulator, const Eigen::VectorXd& theta,
                            std::uint64_t n, std::uint64_t seed, int threads, std::uint64_t* failed = nullptr,
                            FisherEstimator estimator = FisherEstimator::jacobian);

// ---- Maximum likelihood ------------------------------------------------------------------------

enum class Optimizer { adam, rmsprop, sgd };
std::string_view to_string(Optimizer o);
Optimizer parse_optimizer(std::string_view s);  // throws LocalFsmError

struct PilotRun {
  Eigen::VectorXd sigma;     // the grid value
  Eigen::VectorXd theta;     // its averaged estimate
  double discrepancy = 0;    // summary discrepancy D (docs/mle.md); lower is better
};

struct MleSettings {
  Eigen::VectorXd theta0;               // start; empty: the prior's centre
  Eigen::VectorXd sigma;                // proposal sd in u (one or per parameter); empty: pilot calibration
  int iterations = 100;                 // T
  int average_last = 0;                 // K iterates averaged (Polyak); 0: T/2
  std::uint64_t simulations_per_iteration = 1000;  // M = m·r data sets per local fit
  std::uint64_t replicates = 1;         // r
  LocalFeatures features = LocalFeatures::linear;
  const ScoreModel* model = nullptr;
  Optimizer optimizer = Optimizer::adam;
  // Step size in units of h_j = min(σ_j, 1/sqrt(n F_jj)) per coordinate (σ, or the estimate's
  // standard error from the current fit where that is smaller).
  double learning_rate = 0.5;
  RidgeSettings ridge;
  std::uint64_t seed = 0;
  int threads = 0;
  // Pilot calibration of σ (when sigma is empty): one short run per grid value
  // σ_g = fraction_g · (prior scale in u), each started at the estimate of a warm-up run at the
  // largest σ.
  std::vector<double> pilot_fractions{0.3, 0.1, 0.03, 0.01};
  int pilot_iterations = 0;             // 0: max(10, T/5)
  std::uint64_t pilot_replicates = 200; // replicated observation sets simulated per check
  // The largest grid σ whose discrepancy D is at most min D + pilot_tolerance is chosen.
  double pilot_tolerance = 0.1;
  // Called after every iteration of the main run (iteration, θ_t, ‖Σ S_W(x_i)‖ in u).
  std::function<void(int, const Eigen::VectorXd&, double)> on_iteration;
  // Called after each pilot run: the grid value, its estimate and discrepancy (see PilotRun).
  std::function<void(const PilotRun&)> on_pilot;
};


struct MleResult {
  Eigen::VectorXd theta_hat, u_hat;        // Polyak average of the last K iterates
  Eigen::MatrixXd trajectory;              // (T + 1) × d: θ_0 … θ_T of the main run
  Eigen::MatrixXd trajectory_u;            // the same in u
  Eigen::VectorXd gradient_norm;           // T: ‖Σ_i S_W(x_i; θ_t)‖ in u per iteration
  Eigen::VectorXd sigma;                   // σ used by the main run (u coordinates)
  std::string sigma_source;                // "--sigma" or "pilot calibration"
  std::vector<PilotRun> pilot;             // empty unless σ was calibrated
  int average_last = 0;
  // Fisher information per observation at θ̂ in θ coordinates (from a final σ-corrected local fit
  // and fresh simulations at θ̂), its standard errors, and Wald standard errors sqrt(diag F⁻¹/n).
  Eigen::MatrixXd fisher, fisher_standard_error;
  Eigen::VectorXd standard_error;
  std::uint64_t num_observations = 0;
  std::uint64_t simulations = 0, failed = 0;  // every data set simulated, pilot included
  std::vector<std::string> warnings;
  double seconds = 0;
};

// θ̂ = argmax Σ_i log p(x_i | θ) for the i.i.d. rows of `observations` (n × k, row-major memory
// as Eigen column-major k × n: pass observations as k × n). Iterates in u:
// u_{t+1} = u_t + step(Σ_i S_W(x_i; u_t)), then averages the last K iterates.
MleResult maximum_likelihood(const Simulator& simulator, const Prior& prior, const Eigen::MatrixXd& observations,
                             const MleSettings& settings);

// The prior's centre (mean of its Gaussian form, box centre) and scale (per-coordinate standard
// deviation of u under the prior: sd of a normal, σ of a log-normal, π/√3 for a box's logistic u).
Eigen::VectorXd prior_centre(const Prior& prior);
Eigen::VectorXd prior_u_scale(const Prior& prior);

// Checks θ (d values) lies in the interior of the prior's support, where u is finite; throws
// LocalFsmError naming `what` ("--theta0") otherwise.
void check_in_support(const Prior& prior, const Eigen::VectorXd& theta, const std::string& what);

}  // namespace fsbi
