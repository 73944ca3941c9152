// Proposals for sequential (multi-round) Fisher score matching (docs/sequential.md#proposals).
//
// Everything lives in the prior's unconstrained coordinates u (θ = T(u), T =
// ParameterTransform::for_prior(prior)), where the prior density π_u(u) = π(T(u))·|det ∂θ/∂u|
// decays at infinity:
//
//   round 1          q_1(u) = π_u(u)
//   round r > 1      q_r(u) = (1 − α)·g_r(u) + α·π_u(u)       g_r a Gaussian mixture fitted to the
//                                                             current posterior samples in u and
//                                                             widened; α the defensive fraction
//   pooled           q(u)   = Σ_r w_r·q_r(u),  w_r = n_r / Σ n (n_r pairs simulated in round r)
//
// Training on the pooled pairs uses ∇u log q(u) in place of the prior score (TrainingProposal in
// trainer.hpp). Batches are d × n, one sample per COLUMN, as in transform.hpp. Every density and
// score is computed through log-sum-exp with log responsibilities, so it stays finite (and its
// gradient accurate) far from every component, where the densities themselves underflow.
//
// Randomness: every sampler consumes a fixed number of raw words per draw (random.hpp), whatever
// branch or component it picks; nothing is ever redrawn.
//
// Thread safety: all const member functions may be called concurrently (the simulation engine
// calls ProposalPrior::sample from every worker thread).
#pragma once

#include "fsbi/prior.hpp"
#include "fsbi/random.hpp"
#include "fsbi/transform.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fsbi {

// An invalid mixture, fit, proposal or proposal file; the message names the input and the fix.
class ProposalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// g(u) = Σ_k w_k N(u; μ_k, Σ_k) with full covariances.
//
// The members are public for construction and inspection; the cached factors are computed by
// finalize() (which the 3-argument constructor calls). After changing weights, means or
// covariances call finalize() again: the evaluation methods throw ProposalError when the caches
// do not match the members' sizes, but cannot detect changed values.
struct GaussianMixture {
  Eigen::VectorXd weights;                   // K, positive, Σ = 1
  Eigen::MatrixXd means;                     // d × K (component k is column k)
  std::vector<Eigen::MatrixXd> covariances;  // K matrices, each d × d symmetric positive definite

  GaussianMixture() = default;
  // Takes the members and calls finalize().
  GaussianMixture(Eigen::VectorXd weights, Eigen::MatrixXd means, std::vector<Eigen::MatrixXd> covariances);

  // Validates and caches the Cholesky factors and log-normalisers. Throws ProposalError unless:
  // K ≥ 1 and d ≥ 1 with consistent sizes; every entry finite; every weight > 0 and their sum
  // within 1e-9 of 1 (then they are divided by their sum, unless it is already 1 to within
  // K·ε, so finalize() is idempotent bit for bit); every covariance symmetric (|Σ_ij − Σ_ji| ≤
  // 1e-10·√(Σ_ii·Σ_jj); the lower triangle is what is used) and positive definite (Cholesky).
  void finalize();
  bool finalized() const;

  int dim() const { return static_cast<int>(means.rows()); }
  int components() const { return static_cast<int>(weights.size()); }

  // log g(u) per column (1 × n): log-sum-exp over components, finite wherever the quadratic
  // forms are (far beyond where g itself underflows to 0).
  Eigen::RowVectorXd log_density(const Eigen::MatrixXd& u) const;
  // ∇u log g(u) (d × n) = Σ_k r_k(u)·(−Σ_k⁻¹(u − μ_k)), responsibilities r_k from log space.
  Eigen::MatrixXd grad_log_density(const Eigen::MatrixXd& u) const;
  // Both at once (saves the second pass over the components); either pointer may be null.
  void evaluate(const Eigen::MatrixXd& u, Eigen::RowVectorXd* log_density, Eigen::MatrixXd* grad) const;

  // u ← one draw (u.size() == d): one uniform picks the component (inverse CDF over the
  // weights), then d standard normals z give u = μ_k + L_k z. Always 1 uniform + d normals.
  void sample(CounterRng& rng, std::span<double> u) const;

  // Same means and weights, covariances × factor² (factor > 0 and finite, else ProposalError).
  GaussianMixture widened(double factor) const;

  // Cached: lower Cholesky factors L_k (Σ_k = L_k L_kᵀ) and log w_k − (d/2)·log 2π − log det L_k.
  const std::vector<Eigen::MatrixXd>& cholesky_factors() const { return cholesky_; }
  const Eigen::VectorXd& log_normalizers() const { return log_normalizers_; }

 private:
  void check_ready(const Eigen::MatrixXd& u, const char* who) const;
  std::vector<Eigen::MatrixXd> cholesky_;
  Eigen::VectorXd log_normalizers_;
};

struct MixtureFitSettings {
  int components = 5;         // K requested (reduced automatically for few samples)
  int max_iterations = 200;   // EM iterations at most (stopping there is not an error)
  double tolerance = 1e-6;    // stop when the mean log-likelihood per sample changes less
  double covariance_floor = 1e-6;  // added to each covariance: floor × the data's variance, per coordinate
  std::uint64_t seed = 0;     // k-means++ initialisation: CounterRng(seed, Stream::proposal, 0)
};

// Maximum-likelihood Gaussian mixture of the columns of u (d × n) by EM, initialised by
// k-means++ (in per-coordinate standardised distances) and a hard-assignment M-step. Bit-identical
// for equal input and settings. K = min(components, ⌊n / (2(d + 1))⌋), at least 1. A component
// whose effective count Σ_i r_ik falls below d + 1 (empty, or collapsing onto a few points) is
// dropped and the weights renormalised; every covariance gets covariance_floor × var_j (the
// data's variance of coordinate j, 1 where that is 0) on its diagonal, so none is singular.
// Throws ProposalError for n < d + 1 (naming n and d), a non-finite sample (naming its column),
// or invalid settings.
GaussianMixture fit_gaussian_mixture(const Eigen::MatrixXd& u, const MixtureFitSettings& settings = {});

// The support-covering alternative to a mixture's shape (docs/sequential.md#the-truncated-prior): the
// prior restricted, with a smooth edge, to where the fitted mixture g is not negligible,
//
//   t(u) = (1 − β)·π_u(u)·σ(z(u)) / Z + β·g(u),   z(u) = (log g(u) − τ) / h,   Z = E_π_u[σ(z)],
//   β = s + (1 − s)·(1 − Z)^M.
//
// This is exactly the density of the sampler RoundProposal::sample_theta runs: with probability s
// a draw of g; otherwise M prior draws, each accepted with probability σ(z), the first accepted
// one kept, and a draw of g when none is. Z is estimated once, deterministically, from 2^18 prior
// draws (so a proposal rebuilt from its file is the same).
struct PriorTruncation {
  double threshold = 0.0;      // τ, in units of log g
  double width = 1.0;          // h > 0: σ falls from 0.88 to 0.12 over τ + 2h … τ − 2h
  int candidates = 64;         // M ≥ 1 prior draws per proposal draw
  double mixture_share = 0.0;  // s ∈ [0, 1): share of the draws taken from g itself

  // Throws ProposalError naming the four values unless τ is finite, h > 0 and finite, M ≥ 1 and
  // s ∈ [0, 1).
  void validate() const;
};

// One round's proposal q_r(u) = (1 − α)·g_r(u) + α·π_u(u), or π_u alone (round 1); with a
// PriorTruncation, t(u) above takes the place of g_r(u).
//
// The prior is held by shared_ptr<const Prior> (shared with copies of the proposal and every
// ProposalPrior made from it), so it lives as long as any of them; parse_prior's unique_ptr
// converts. It must be a prior ParameterTransform::for_prior accepts (uniform, normal, mvnormal,
// lognormal).
class RoundProposal {
 public:
  // Round 1: the prior alone (α = 1).
  explicit RoundProposal(std::shared_ptr<const Prior> prior);
  // A later round. α ∈ (0, 1] (α = 1 keeps the mixture but gives it no weight); the mixture
  // must be finalized with the prior's dimension. Throws ProposalError otherwise.
  RoundProposal(std::shared_ptr<const Prior> prior, GaussianMixture mixture, double defensive_fraction,
                std::optional<PriorTruncation> truncation = std::nullopt);

  int dim() const { return prior_->dim(); }
  const Prior& prior() const { return *prior_; }
  const std::shared_ptr<const Prior>& prior_ptr() const { return prior_; }
  const ParameterTransform& transform() const { return transform_; }
  const std::optional<GaussianMixture>& mixture() const { return mixture_; }
  double defensive_fraction() const { return alpha_; }
  const std::optional<PriorTruncation>& truncation() const { return truncation_; }
  double truncation_log_mass() const { return log_z_; }  // log Z (0 without a truncation)

  // The part drawn with probability 1 − α, in u: log g_r (or log t) and its gradient, (1 × n)
  // and (d × n); either pointer may be null. Requires a mixture (ProposalError otherwise).
  void evaluate_focus_u(const Eigen::MatrixXd& u, Eigen::RowVectorXd* log_density, Eigen::MatrixXd* score) const;

  // log q_r(u) (1 × n) and ∇u log q_r(u) (d × n), log-sum-exp over the two parts (g_r, or t_r
  // with a truncation, and π_u).
  Eigen::RowVectorXd log_density_u(const Eigen::MatrixXd& u) const;
  Eigen::MatrixXd score_u(const Eigen::MatrixXd& u) const;
  void evaluate_u(const Eigen::MatrixXd& u, Eigen::RowVectorXd* log_density, Eigen::MatrixXd* score) const;

  // θ ← one draw of T(u), u ~ q_r. One uniform v picks the part (prior if v < α); then BOTH parts
  // are drawn, the prior's θ by Prior::sample and the mixture's u by GaussianMixture::sample, and
  // the picked one is kept, so every call consumes the same number of raw words (Prior's
  // contract). The mixture's u is clamped to ±30 in box coordinates (±700 in positive ones)
  // before T: beyond that T(u) rounds onto (or, for exp, past) the edge of the support. A box
  // θ that still rounds onto a face (a box narrow relative to |θ|) is moved one ulp inside, so a
  // mixture draw is always strictly inside the support and has a finite u. The clamp moves the
  // mixture's mass beyond ±30 (< e^-30 relative to the box prior's own there) onto ±30;
  // log densities ignore it. With a truncation, M candidates from the prior, their M acceptance
  // uniforms and one uniform for the mixture's share are drawn as well, every time
  // (PriorTruncation).
  void sample_theta(CounterRng& rng, std::span<double> theta) const;

  // "0.9·mixture(5 components, fingerprint 0123456789abcdef) + 0.1·uniform(-1, 1)", or the
  // prior's spec for round 1. The fingerprint (FNV-1a over the mixture's and α's bits) changes
  // whenever the proposal does.
  std::string description() const;

 private:
  std::shared_ptr<const Prior> prior_;
  ParameterTransform transform_;
  std::optional<GaussianMixture> mixture_;
  std::optional<PriorTruncation> truncation_;
  double log_z_ = 0.0, log_beta_ = 0.0, log_one_minus_beta_ = 0.0;
  double alpha_ = 1.0;
  double log_alpha_ = 0.0, log_one_minus_alpha_ = 0.0;
};

// The density the pooled pairs came from: q(u) = Σ_r w_r·q_r(u), w_r = n_r / Σ_s n_s.
class PooledProposal {
 public:
  // One pair count per round, each ≥ 1; every round must use the same transform (same prior
  // family and bounds). Throws ProposalError otherwise.
  PooledProposal(std::vector<RoundProposal> rounds, std::vector<std::uint64_t> pair_counts);

  int dim() const { return rounds_.front().dim(); }
  const std::vector<RoundProposal>& rounds() const { return rounds_; }
  const std::vector<std::uint64_t>& pair_counts() const { return counts_; }
  const Eigen::VectorXd& log_weights() const { return log_weights_; }  // log w_r

  // log q(u) (1 × n): log-sum-exp of log w_r + log q_r(u). ∇u log q(u) (d × n):
  // Σ_r softmax_r(log w_r + log q_r(u))·∇u log q_r(u).
  Eigen::RowVectorXd log_density_u(const Eigen::MatrixXd& u) const;
  Eigen::MatrixXd score_u(const Eigen::MatrixXd& u) const;

  // "pooled(1000·uniform(-1, 1) + 2000·(…round 2…))", for TrainingProposal::description.
  std::string description() const;

 private:
  std::vector<RoundProposal> rounds_;
  std::vector<std::uint64_t> counts_;
  Eigen::VectorXd log_weights_;
};

// A RoundProposal as a Prior over θ, so run_simulations can draw a round's θ's from it.
//
//   sample          RoundProposal::sample_theta
//   log_density(θ)  log q_θ(θ) = log-sum-exp(log α + log π(θ), log(1 − α) + log g(u) − log|dθ/du|)
//                   (t in place of g with a truncation),
//                   u = T⁻¹(θ); −inf outside the prior's support. Equal to
//                   log q_u(u) − log|det ∂θ/∂u| inside; on a box face (u = ±inf), where the mixture
//                   part vanishes, it is log α + log π(θ).
//   grad            ∇θ log q_θ = (∇u log q_u − ∇u log|dθ/du|) / (dθ/du) elementwise (the
//                   transforms are diagonal), computed per part so it stays finite where
//                   dθ/du underflows: r_π·∇θ log π(θ) + r_g·(∇u log g − ∇u log|dθ/du|)/(dθ/du)
//                   with r the parts' responsibilities.
//   support, bounds those of the wrapped prior.
//   kind()          "proposal"; gaussian_form() nullopt.
//   spec()          "proposal(round 2: <description>)": descriptive, NOT parseable by
//                   parse_prior. run_simulations stores it as the file's prior, so such a file
//                   cannot be trained from by path (the trainer parses the stored prior): record
//                   the real prior (RoundProposal::prior().spec()) yourself. A resumed run with
//                   a different proposal is rejected because the fingerprint differs.
// ParameterTransform::for_prior rejects a ProposalPrior (no coordinate map for 'proposal'): use
// the wrapped prior's transform.
class ProposalPrior final : public Prior {
 public:
  // round ≥ 1 (only used in spec()).
  ProposalPrior(RoundProposal proposal, int round);

  const RoundProposal& proposal() const { return proposal_; }
  int round() const { return round_; }

  void sample(CounterRng& rng, std::span<double> theta) const override;
  double log_density(std::span<const double> theta) const override;
  void grad_log_density(std::span<const double> theta, std::span<double> grad) const override;
  bool in_support(std::span<const double> theta) const override;
  std::string spec() const override;
  std::string_view kind() const override { return "proposal"; }
  Eigen::VectorXd lower_bounds() const override;
  Eigen::VectorXd upper_bounds() const override;

 private:
  RoundProposal proposal_;
  int round_;
};

}  // namespace fsbi
