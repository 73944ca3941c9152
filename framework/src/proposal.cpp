// Proposals for sequential rounds (fsbi/proposal.hpp, docs/sequential.md#proposals).
//
// Numerics. A component's log density is log w_k − (d/2)·log 2π − log det L_k − ½‖z‖² with
// z = L_k⁻¹(u − μ_k) from a triangular solve; mixtures are combined with log-sum-exp around the
// largest term and gradients weighted by responsibilities exp(ℓ_k − ℓ), so nothing is ever
// exponentiated on its own. Far from every component (‖z‖² in the thousands, where the densities
// underflow) the log density stays exact and the gradient is that of the nearest component in
// Mahalanobis terms. Each evaluation is two passes over the components (log terms, then
// gradients), so the memory is O((d + K)·n) and never K·d·n.

#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/proposal.hpp"

#include <Eigen/Cholesky>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace fsbi {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kHalfLog2Pi = 0.91893853320467274178032973640562;  // ½·log(2π)
constexpr double kEps = std::numeric_limits<double>::epsilon();

// Mixture draws are clamped to these |u| before T (RoundProposal::sample_theta).
constexpr double kBoxClamp = 30.0;
constexpr double kPositiveClamp = 700.0;  // exp(±700) is a normal, finite double

// log(e^a + e^b) without overflow; −inf when both are.
double log_add(double a, double b) {
  const double m = std::max(a, b);
  if (m == -kInf) return -kInf;
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

// Column-wise log-sum-exp of a K × n matrix.
Eigen::RowVectorXd log_sum_exp_columns(const Eigen::MatrixXd& terms) {
  Eigen::RowVectorXd out(terms.cols());
  for (Eigen::Index j = 0; j < terms.cols(); ++j) {
    const double m = terms.col(j).maxCoeff();
    if (m == -kInf || std::isnan(m)) {
      out[j] = m;
      continue;
    }
    double s = 0.0;
    for (Eigen::Index k = 0; k < terms.rows(); ++k) s += std::exp(terms(k, j) - m);
    out[j] = m + std::log(s);
  }
  return out;
}

void check_u_rows(const Eigen::MatrixXd& u, int dim, const char* who) {
  if (u.rows() != dim) {
    throw std::invalid_argument(fmt::format("{}: u has {} rows but the proposal has dimension {} (one parameter "
                                            "per row, one sample per column)",
                                            who, u.rows(), dim));
  }
}

std::string format_matrix(const Eigen::MatrixXd& m) {
  std::string s = "[";
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    s += i ? ", [" : "[";
    for (Eigen::Index j = 0; j < m.cols(); ++j) s += fmt::format("{}{:.6g}", j ? ", " : "", m(i, j));
    s += "]";
  }
  return s + "]";
}

// FNV-1a, 64 bit, over the bit patterns of doubles and the bytes of strings.
class Fnv1a {
 public:
  void add(double v) {
    const auto bits = std::bit_cast<std::uint64_t>(v);
    for (int i = 0; i < 8; ++i) byte(static_cast<unsigned char>(bits >> (8 * i)));
  }
  void add(const Eigen::MatrixXd& m) {
    add(static_cast<double>(m.rows()));
    add(static_cast<double>(m.cols()));
    for (Eigen::Index j = 0; j < m.cols(); ++j)
      for (Eigen::Index i = 0; i < m.rows(); ++i) add(m(i, j));
  }
  void add(std::string_view s) {
    for (const char c : s) byte(static_cast<unsigned char>(c));
  }
  std::uint64_t value() const { return h_; }

 private:
  void byte(unsigned char b) {
    h_ ^= b;
    h_ *= 0x100000001b3ULL;
  }
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

// log σ(z) = −log(1 + e^−z) without overflow either way.
double log_sigmoid(double z) { return z >= 0.0 ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z)); }

// Z = E_π_u[σ(z(u))] for a truncation (PriorTruncation): the mean over a fixed set of prior draws
// (seed and counters below), in a fixed order, so a proposal rebuilt from its file has the same Z.
constexpr std::uint64_t kTruncationSeed = 0x7472756e63617465ULL;  // "truncate"
constexpr Eigen::Index kTruncationDraws = Eigen::Index{1} << 18;
constexpr Eigen::Index kTruncationBatch = 4096;

bool same_transform(const ParameterTransform& a, const ParameterTransform& b) {
  if (a.maps() != b.maps() || a.low().size() != b.low().size() || a.high().size() != b.high().size()) return false;
  for (Eigen::Index i = 0; i < a.low().size(); ++i) {
    if (a.low()[i] != b.low()[i] || a.high()[i] != b.high()[i]) return false;
  }
  return true;
}

}  // namespace

// ---- GaussianMixture --------------------------------------------------------------------------

GaussianMixture::GaussianMixture(Eigen::VectorXd w, Eigen::MatrixXd m, std::vector<Eigen::MatrixXd> c)
    : weights(std::move(w)), means(std::move(m)), covariances(std::move(c)) {
  finalize();
}

void GaussianMixture::finalize() {
  cholesky_.clear();
  log_normalizers_.resize(0);
  const Eigen::Index K = weights.size();
  const Eigen::Index d = means.rows();
  if (K < 1) throw ProposalError("GaussianMixture: no components; give at least one weight");
  if (d < 1) throw ProposalError("GaussianMixture: the means have no rows; give a d × K matrix with d ≥ 1");
  if (means.cols() != K || static_cast<Eigen::Index>(covariances.size()) != K) {
    throw ProposalError(fmt::format("GaussianMixture: {} weights, {} mean columns and {} covariances; give one "
                                    "of each per component (means is d × K)",
                                    K, means.cols(), covariances.size()));
  }
  for (Eigen::Index k = 0; k < K; ++k) {
    if (!(weights[k] > 0.0) || !std::isfinite(weights[k])) {
      throw ProposalError(fmt::format("GaussianMixture: weight {} is {}; every weight must be positive and finite",
                                      k, weights[k]));
    }
    if (!means.col(k).allFinite()) {
      throw ProposalError(fmt::format("GaussianMixture: mean {} has a non-finite entry", k));
    }
  }
  const double sum = weights.sum();
  if (!(std::abs(sum - 1.0) <= 1e-9)) {
    throw ProposalError(fmt::format("GaussianMixture: the weights sum to {:.17g}, not 1 (within 1e-9); normalise "
                                    "them",
                                    sum));
  }
  // Only a sum off by more than rounding is corrected: w/Σw sums to 1 within K·ε, so a second
  // finalize() leaves the weights bit for bit unchanged (file round trips stay exact).
  if (std::abs(sum - 1.0) > static_cast<double>(K) * kEps) weights /= sum;

  cholesky_.reserve(static_cast<std::size_t>(K));
  log_normalizers_.resize(K);
  for (Eigen::Index k = 0; k < K; ++k) {
    const Eigen::MatrixXd& c = covariances[static_cast<std::size_t>(k)];
    if (c.rows() != d || c.cols() != d) {
      throw ProposalError(fmt::format("GaussianMixture: covariance {} is {}x{} but the means have dimension {}", k,
                                      c.rows(), c.cols(), d));
    }
    if (!c.allFinite()) throw ProposalError(fmt::format("GaussianMixture: covariance {} has a non-finite entry", k));
    for (Eigen::Index i = 0; i < d; ++i) {
      for (Eigen::Index j = 0; j < i; ++j) {
        const double scale = std::sqrt(std::abs(c(i, i) * c(j, j)));
        if (!(std::abs(c(i, j) - c(j, i)) <= 1e-10 * scale)) {
          throw ProposalError(fmt::format("GaussianMixture: covariance {} is not symmetric: entry ({}, {}) = {} "
                                          "but ({}, {}) = {}: {}",
                                          k, i, j, c(i, j), j, i, c(j, i), format_matrix(c)));
        }
      }
    }
    Eigen::LLT<Eigen::MatrixXd> llt(c);
    Eigen::MatrixXd L = llt.matrixL();
    bool ok = llt.info() == Eigen::Success;
    for (Eigen::Index i = 0; ok && i < d; ++i) ok = L(i, i) > 0.0 && std::isfinite(L(i, i));
    if (!ok) {
      throw ProposalError(fmt::format("GaussianMixture: covariance {} is not positive definite (its Cholesky "
                                      "factorisation fails): {}; a covariance must be symmetric positive definite",
                                      k, format_matrix(c)));
    }
    log_normalizers_[k] = std::log(weights[k]) - static_cast<double>(d) * kHalfLog2Pi -
                          L.diagonal().array().log().sum();
    cholesky_.push_back(std::move(L));
  }
}

bool GaussianMixture::finalized() const {
  return weights.size() > 0 && static_cast<Eigen::Index>(cholesky_.size()) == weights.size() &&
         log_normalizers_.size() == weights.size() && means.cols() == weights.size() &&
         static_cast<Eigen::Index>(covariances.size()) == weights.size() &&
         (cholesky_.empty() || cholesky_.front().rows() == means.rows());
}

void GaussianMixture::check_ready(const Eigen::MatrixXd& u, const char* who) const {
  if (!finalized()) {
    throw ProposalError(fmt::format("{}: the mixture is not finalized (call finalize() after setting weights, "
                                    "means and covariances)",
                                    who));
  }
  check_u_rows(u, dim(), who);
}

void GaussianMixture::evaluate(const Eigen::MatrixXd& u, Eigen::RowVectorXd* log_density_out,
                               Eigen::MatrixXd* grad_out) const {
  check_ready(u, "GaussianMixture");
  const Eigen::Index K = weights.size(), n = u.cols();
  // Pass 1: ℓ_k(u) per component.
  Eigen::MatrixXd terms(K, n);
  for (Eigen::Index k = 0; k < K; ++k) {
    const auto& L = cholesky_[static_cast<std::size_t>(k)];
    const Eigen::MatrixXd z = L.triangularView<Eigen::Lower>().solve(u.colwise() - means.col(k));
    terms.row(k) = (log_normalizers_[k] - 0.5 * z.colwise().squaredNorm().array()).matrix();
  }
  const Eigen::RowVectorXd lse = log_sum_exp_columns(terms);
  if (grad_out) {
    // Pass 2: Σ_k r_k·(−Σ_k⁻¹(u − μ_k)), r_k = exp(ℓ_k − ℓ); components with r_k = 0 (underflow)
    // contribute nothing, not 0·(huge).
    Eigen::MatrixXd& g = *grad_out;
    g.setZero(u.rows(), n);
    for (Eigen::Index k = 0; k < K; ++k) {
      const auto& L = cholesky_[static_cast<std::size_t>(k)];
      Eigen::MatrixXd z = L.triangularView<Eigen::Lower>().solve(u.colwise() - means.col(k));
      L.transpose().triangularView<Eigen::Upper>().solveInPlace(z);  // Σ_k⁻¹(u − μ_k)
      for (Eigen::Index j = 0; j < n; ++j) {
        const double r = std::exp(terms(k, j) - lse[j]);
        if (r > 0.0) g.col(j) -= r * z.col(j);
        else if (std::isnan(r)) g.col(j).setConstant(std::numeric_limits<double>::quiet_NaN());
      }
    }
  }
  if (log_density_out) *log_density_out = lse;
}

Eigen::RowVectorXd GaussianMixture::log_density(const Eigen::MatrixXd& u) const {
  Eigen::RowVectorXd out;
  evaluate(u, &out, nullptr);
  return out;
}

Eigen::MatrixXd GaussianMixture::grad_log_density(const Eigen::MatrixXd& u) const {
  Eigen::MatrixXd out;
  evaluate(u, nullptr, &out);
  return out;
}

void GaussianMixture::sample(CounterRng& rng, std::span<double> u) const {
  if (!finalized()) throw ProposalError("GaussianMixture::sample: the mixture is not finalized");
  const int d = dim();
  if (u.size() != static_cast<std::size_t>(d)) {
    throw std::invalid_argument(
        fmt::format("GaussianMixture::sample: u has {} entries but the mixture has dimension {}", u.size(), d));
  }
  const double v = rng.uniform();
  const Eigen::Index K = weights.size();
  Eigen::Index k = K - 1;  // a v beyond the rounded cumulative sum falls in the last component
  double cum = 0.0;
  for (Eigen::Index c = 0; c < K - 1; ++c) {
    cum += weights[c];
    if (v < cum) {
      k = c;
      break;
    }
  }
  for (int i = 0; i < d; ++i) u[static_cast<std::size_t>(i)] = rng.normal();  // z
  // u = μ + L z in place, from the last row up: row i needs z_0..z_i, still untouched.
  const auto& L = cholesky_[static_cast<std::size_t>(k)];
  for (int i = d - 1; i >= 0; --i) {
    double s = means(i, k);
    for (int j = 0; j <= i; ++j) s += L(i, j) * u[static_cast<std::size_t>(j)];
    u[static_cast<std::size_t>(i)] = s;
  }
}

GaussianMixture GaussianMixture::widened(double factor) const {
  if (!(factor > 0.0) || !std::isfinite(factor)) {
    throw ProposalError(fmt::format("GaussianMixture::widened: factor {} must be positive and finite", factor));
  }
  std::vector<Eigen::MatrixXd> c;
  c.reserve(covariances.size());
  for (const auto& m : covariances) c.push_back(m * (factor * factor));
  return GaussianMixture(weights, means, std::move(c));
}

// ---- EM fit -----------------------------------------------------------------------------------

namespace {

// M-step from responsibilities R (K × n): components with effective count < d + 1 are dropped.
// Returns a finalized mixture; throws ProposalError if nothing is left.
GaussianMixture m_step(const Eigen::MatrixXd& u, const Eigen::MatrixXd& R, const Eigen::VectorXd& floor_diag) {
  const Eigen::Index d = u.rows();
  Eigen::VectorXd counts = R.rowwise().sum();
  std::vector<Eigen::Index> kept;
  std::vector<Eigen::VectorXd> mus;
  std::vector<Eigen::MatrixXd> covs;
  for (Eigen::Index k = 0; k < R.rows(); ++k) {
    const double nk = counts[k];
    if (!(nk >= static_cast<double>(d + 1))) continue;  // empty or collapsing: drop
    Eigen::VectorXd mu = (u * R.row(k).transpose()) / nk;
    const Eigen::MatrixXd dev = u.colwise() - mu;
    Eigen::MatrixXd cov = (dev.array().rowwise() * R.row(k).array()).matrix() * dev.transpose() / nk;
    cov = 0.5 * (cov + cov.transpose()).eval();  // exactly symmetric
    cov.diagonal() += floor_diag;
    Eigen::LLT<Eigen::MatrixXd> llt(cov);
    if (llt.info() != Eigen::Success || !cov.allFinite() || !mu.allFinite()) continue;
    kept.push_back(k);
    mus.push_back(std::move(mu));
    covs.push_back(std::move(cov));
  }
  if (kept.empty()) {
    throw ProposalError("fit_gaussian_mixture: every component collapsed (fewer than d + 1 effective samples each); "
                        "give more samples or fewer components");
  }
  const auto K = static_cast<Eigen::Index>(kept.size());
  Eigen::VectorXd w(K);
  Eigen::MatrixXd m(d, K);
  for (Eigen::Index k = 0; k < K; ++k) {
    w[k] = counts[kept[static_cast<std::size_t>(k)]];
    m.col(k) = mus[static_cast<std::size_t>(k)];
  }
  w /= w.sum();
  return GaussianMixture(std::move(w), std::move(m), std::move(covs));
}

// Per-component log terms ℓ_k(u) (K × n), as in GaussianMixture::evaluate.
Eigen::MatrixXd component_terms(const GaussianMixture& g, const Eigen::MatrixXd& u) {
  Eigen::MatrixXd terms(g.components(), u.cols());
  for (int k = 0; k < g.components(); ++k) {
    const auto& L = g.cholesky_factors()[static_cast<std::size_t>(k)];
    const Eigen::MatrixXd z = L.triangularView<Eigen::Lower>().solve(u.colwise() - g.means.col(k));
    terms.row(k) = (g.log_normalizers()[k] - 0.5 * z.colwise().squaredNorm().array()).matrix();
  }
  return terms;
}

}  // namespace

GaussianMixture fit_gaussian_mixture(const Eigen::MatrixXd& u, const MixtureFitSettings& st) {
  static constexpr const char* kWho = "fit_gaussian_mixture";
  if (st.components < 1) throw ProposalError(fmt::format("{}: components is {}; ask for at least 1", kWho, st.components));
  if (st.max_iterations < 1)
    throw ProposalError(fmt::format("{}: max_iterations is {}; allow at least 1", kWho, st.max_iterations));
  if (!(st.tolerance > 0.0) || !std::isfinite(st.tolerance))
    throw ProposalError(fmt::format("{}: tolerance {} must be positive and finite", kWho, st.tolerance));
  if (!(st.covariance_floor > 0.0) || !std::isfinite(st.covariance_floor))
    throw ProposalError(fmt::format("{}: covariance_floor {} must be positive and finite", kWho, st.covariance_floor));
  const Eigen::Index d = u.rows(), n = u.cols();
  if (d < 1) throw ProposalError(fmt::format("{}: the samples have no rows (d = 0); u is d × n", kWho));
  for (Eigen::Index j = 0; j < n; ++j) {
    for (Eigen::Index i = 0; i < d; ++i) {
      if (!std::isfinite(u(i, j))) {
        throw ProposalError(fmt::format("{}: sample {} (column {}, coordinate {}) is {}; every sample must be "
                                        "finite in the unconstrained coordinates",
                                        kWho, j, j, i, u(i, j)));
      }
    }
  }
  if (n < d + 1) {
    throw ProposalError(fmt::format("{}: {} samples in {} dimensions; a full covariance needs at least d + 1 = {} "
                                    "samples (and 2·(d + 1) = {} per component)",
                                    kWho, n, d, d + 1, 2 * (d + 1)));
  }
  const Eigen::Index K = std::max<Eigen::Index>(
      1, std::min<Eigen::Index>(st.components, n / (2 * (d + 1))));

  // Per-coordinate scale: the floor's unit and the k-means++ metric.
  const Eigen::VectorXd mean = u.rowwise().mean();
  Eigen::VectorXd var = (u.colwise() - mean).array().square().rowwise().sum().matrix() / static_cast<double>(n);
  for (Eigen::Index i = 0; i < d; ++i) {
    if (!(var[i] > 0.0) || !std::isfinite(var[i])) var[i] = 1.0;
  }
  const Eigen::VectorXd floor_diag = st.covariance_floor * var;
  const Eigen::MatrixXd s = var.cwiseSqrt().cwiseInverse().asDiagonal() * (u.colwise() - mean);

  // k-means++: first centre uniform, each next with probability ∝ D² (squared distance to the
  // nearest centre so far), one uniform per centre.
  CounterRng rng(st.seed, Stream::proposal, 0);
  std::vector<Eigen::Index> centres;
  centres.push_back(std::min<Eigen::Index>(n - 1, static_cast<Eigen::Index>(rng.uniform() * static_cast<double>(n))));
  Eigen::VectorXd d2 = (s.colwise() - s.col(centres[0])).colwise().squaredNorm().transpose();
  while (static_cast<Eigen::Index>(centres.size()) < K) {
    const double v = rng.uniform();
    const double total = d2.sum();
    if (!(total > 0.0)) break;  // every sample coincides with a centre: fewer components
    const double target = v * total;
    Eigen::Index pick = -1;
    double cum = 0.0;
    for (Eigen::Index j = 0; j < n; ++j) {
      if (d2[j] <= 0.0) continue;
      cum += d2[j];
      pick = j;
      if (target < cum) break;
    }
    centres.push_back(pick);
    d2 = d2.cwiseMin((s.colwise() - s.col(pick)).colwise().squaredNorm().transpose());
  }

  // Hard assignment to the nearest centre, then EM from that M-step.
  const auto Kc = static_cast<Eigen::Index>(centres.size());
  Eigen::MatrixXd R = Eigen::MatrixXd::Zero(Kc, n);
  for (Eigen::Index j = 0; j < n; ++j) {
    Eigen::Index best = 0;
    double best_d2 = kInf;
    for (Eigen::Index c = 0; c < Kc; ++c) {
      const double dd = (s.col(j) - s.col(centres[static_cast<std::size_t>(c)])).squaredNorm();
      if (dd < best_d2) {
        best_d2 = dd;
        best = c;
      }
    }
    R(best, j) = 1.0;
  }
  GaussianMixture g = m_step(u, R, floor_diag);

  double previous = -kInf;
  for (int it = 0; it < st.max_iterations; ++it) {
    const Eigen::MatrixXd terms = component_terms(g, u);
    const Eigen::RowVectorXd lse = log_sum_exp_columns(terms);
    const double ll = lse.mean();
    if (!std::isfinite(ll)) {
      throw ProposalError(fmt::format("{}: the log-likelihood became {} at iteration {}; the samples may span too "
                                      "many orders of magnitude",
                                      kWho, ll, it));
    }
    if (std::abs(ll - previous) < st.tolerance) break;
    previous = ll;
    R = (terms.rowwise() - lse).array().exp().matrix();
    g = m_step(u, R, floor_diag);
  }
  return g;
}

// ---- RoundProposal ----------------------------------------------------------------------------

namespace {

ParameterTransform transform_for(const std::shared_ptr<const Prior>& prior) {
  if (!prior) throw ProposalError("RoundProposal: no prior given (null pointer)");
  try {
    return ParameterTransform::for_prior(*prior);
  } catch (const std::invalid_argument& e) {
    throw ProposalError(fmt::format("RoundProposal: prior {} has no unconstrained coordinates ({}); use a uniform, "
                                    "normal, mvnormal or lognormal prior",
                                    prior->spec(), e.what()));
  }
}

}  // namespace

void PriorTruncation::validate() const {
  if (!std::isfinite(threshold) || !(std::isfinite(width) && width > 0.0) || candidates < 1 ||
      !(mixture_share >= 0.0 && mixture_share < 1.0)) {
    throw ProposalError(fmt::format("truncation threshold {} must be finite, width {} positive, candidates {} at "
                                    "least 1 and mixture share {} in [0, 1)",
                                    threshold, width, candidates, mixture_share));
  }
}

RoundProposal::RoundProposal(std::shared_ptr<const Prior> prior)
    : prior_(std::move(prior)), transform_(transform_for(prior_)) {}

RoundProposal::RoundProposal(std::shared_ptr<const Prior> prior, GaussianMixture mixture, double defensive_fraction,
                             std::optional<PriorTruncation> truncation)
    : prior_(std::move(prior)), transform_(transform_for(prior_)), alpha_(defensive_fraction) {
  if (!(alpha_ > 0.0 && alpha_ <= 1.0)) {
    throw ProposalError(fmt::format("RoundProposal: defensive fraction {} must be in (0, 1] (1 = the prior alone); "
                                    "with 0 the proposal could vanish where the posterior does not",
                                    alpha_));
  }
  if (!mixture.finalized()) throw ProposalError("RoundProposal: the mixture is not finalized (call finalize())");
  if (mixture.dim() != prior_->dim()) {
    throw ProposalError(fmt::format("RoundProposal: the mixture has dimension {} but prior {} has dimension {}",
                                    mixture.dim(), prior_->spec(), prior_->dim()));
  }
  mixture_ = std::move(mixture);
  log_alpha_ = std::log(alpha_);
  log_one_minus_alpha_ = std::log1p(-alpha_);  // −inf for α = 1
  if (truncation) {
    const PriorTruncation& t = *truncation;
    t.validate();
    truncation_ = t;
    const int d = dim();
    double sum = 0.0;
    Eigen::MatrixXd theta(d, kTruncationBatch);
    for (Eigen::Index b = 0; b < kTruncationDraws; b += kTruncationBatch) {
      for (Eigen::Index j = 0; j < kTruncationBatch; ++j) {
        CounterRng rng(kTruncationSeed, Stream::proposal, static_cast<std::uint64_t>(b + j), 1);
        prior_->sample(rng, std::span<double>(theta.col(j).data(), static_cast<std::size_t>(d)));
      }
      const Eigen::MatrixXd u = transform_.to_unconstrained(theta);
      const Eigen::RowVectorXd lg = mixture_->log_density(u);
      for (Eigen::Index j = 0; j < kTruncationBatch; ++j) {
        if (u.col(j).allFinite()) sum += std::exp(log_sigmoid((lg[j] - t.threshold) / t.width));
      }
    }
    const double z = sum / static_cast<double>(kTruncationDraws);
    log_z_ = std::log(z);  // −inf when no draw falls inside: then t = g
    const double log_none = static_cast<double>(t.candidates) * std::log1p(-z);  // no candidate accepted
    log_one_minus_beta_ = z > 0.0 ? std::log1p(-t.mixture_share) + std::log(-std::expm1(log_none)) : -kInf;
    log_beta_ = log_add(t.mixture_share > 0.0 ? std::log(t.mixture_share) : -kInf,
                        std::log1p(-t.mixture_share) + log_none);
  }
}

void RoundProposal::evaluate_focus_u(const Eigen::MatrixXd& u, Eigen::RowVectorXd* log_density,
                                     Eigen::MatrixXd* score) const {
  check_u_rows(u, dim(), "RoundProposal");
  if (!mixture_) throw ProposalError("RoundProposal::evaluate_focus_u: round 1's proposal is the prior alone");
  if (!truncation_) {
    mixture_->evaluate(u, log_density, score);
    return;
  }
  Eigen::RowVectorXd lg;
  Eigen::MatrixXd gg;
  mixture_->evaluate(u, &lg, score ? &gg : nullptr);
  const Eigen::RowVectorXd lp = transform_.prior_log_density(*prior_, u);
  Eigen::MatrixXd gp;
  if (score) gp = transform_.prior_score(*prior_, u);
  const double tau = truncation_->threshold, h = truncation_->width;
  const Eigen::Index n = u.cols();
  Eigen::RowVectorXd lt(n);
  if (score) score->resize(u.rows(), n);
  for (Eigen::Index j = 0; j < n; ++j) {
    const double z = (lg[j] - tau) / h;
    const double a = log_one_minus_beta_ == -kInf ? -kInf : log_one_minus_beta_ + lp[j] + log_sigmoid(z) - log_z_;
    const double b = log_beta_ + lg[j];
    lt[j] = log_add(a, b);
    if (!score) continue;
    const double ra = std::exp(a - lt[j]), rb = std::exp(b - lt[j]);
    auto s = score->col(j);
    s.setZero();
    // ∇ log(π_u σ(z)) = ∇ log π_u + σ(−z)·∇ log g / h.
    if (ra > 0.0 || std::isnan(ra)) s += ra * (gp.col(j) + (std::exp(log_sigmoid(-z)) / h) * gg.col(j));
    if (rb > 0.0 || std::isnan(rb)) s += rb * gg.col(j);
  }
  if (log_density) *log_density = lt;
}

void RoundProposal::evaluate_u(const Eigen::MatrixXd& u, Eigen::RowVectorXd* log_density,
                               Eigen::MatrixXd* score) const {
  check_u_rows(u, dim(), "RoundProposal");
  const Eigen::RowVectorXd lp = transform_.prior_log_density(*prior_, u);
  if (!mixture_ || alpha_ == 1.0) {
    if (log_density) *log_density = lp;
    if (score) *score = transform_.prior_score(*prior_, u);
    return;
  }
  Eigen::RowVectorXd lg;
  Eigen::MatrixXd gg;
  evaluate_focus_u(u, &lg, score ? &gg : nullptr);
  const Eigen::Index n = u.cols();
  Eigen::RowVectorXd lq(n);
  for (Eigen::Index j = 0; j < n; ++j) lq[j] = log_add(log_alpha_ + lp[j], log_one_minus_alpha_ + lg[j]);
  if (score) {
    const Eigen::MatrixXd gp = transform_.prior_score(*prior_, u);
    Eigen::MatrixXd& s = *score;
    s.resize(u.rows(), n);
    for (Eigen::Index j = 0; j < n; ++j) {
      const double rp = std::exp(log_alpha_ + lp[j] - lq[j]);
      const double rg = std::exp(log_one_minus_alpha_ + lg[j] - lq[j]);
      s.col(j).setZero();
      if (rp > 0.0 || std::isnan(rp)) s.col(j) += rp * gp.col(j);
      if (rg > 0.0 || std::isnan(rg)) s.col(j) += rg * gg.col(j);
    }
  }
  if (log_density) *log_density = lq;
}

Eigen::RowVectorXd RoundProposal::log_density_u(const Eigen::MatrixXd& u) const {
  Eigen::RowVectorXd out;
  evaluate_u(u, &out, nullptr);
  return out;
}

Eigen::MatrixXd RoundProposal::score_u(const Eigen::MatrixXd& u) const {
  Eigen::MatrixXd out;
  evaluate_u(u, nullptr, &out);
  return out;
}

void RoundProposal::sample_theta(CounterRng& rng, std::span<double> theta) const {
  const int d = dim();
  if (theta.size() != static_cast<std::size_t>(d)) {
    throw std::invalid_argument(fmt::format("RoundProposal::sample_theta: theta has {} entries but the proposal has "
                                            "dimension {}",
                                            theta.size(), d));
  }
  if (!mixture_) {  // round 1: exactly the prior's draws
    prior_->sample(rng, theta);
    return;
  }
  const double v = rng.uniform();
  prior_->sample(rng, theta);  // drawn whichever part is picked: a fixed number of words
  Eigen::MatrixXd u(d, 1);
  mixture_->sample(rng, std::span<double>(u.data(), static_cast<std::size_t>(d)));
  if (truncation_) {
    // M prior candidates with M acceptance uniforms, and one uniform for the share drawn from g
    // directly: all drawn whatever is kept (a fixed number of words).
    const int M = truncation_->candidates;
    Eigen::MatrixXd cand(d, M);
    Eigen::VectorXd w(M);
    for (int m = 0; m < M; ++m) {
      prior_->sample(rng, std::span<double>(cand.col(m).data(), static_cast<std::size_t>(d)));
      w[m] = rng.uniform();
    }
    const double v_share = rng.uniform();
    if (v < alpha_) return;  // the prior's draw
    const auto first_accepted = [&]() -> bool {
      const Eigen::MatrixXd cu = transform_.to_unconstrained(cand);
      const Eigen::RowVectorXd lg = mixture_->log_density(cu);
      for (int m = 0; m < M; ++m) {
        if (!cu.col(m).allFinite()) continue;  // on a box face: σ = 0 there
        if (std::log(w[m]) < log_sigmoid((lg[m] - truncation_->threshold) / truncation_->width)) {
          for (int i = 0; i < d; ++i) theta[static_cast<std::size_t>(i)] = cand(i, m);
          return true;
        }
      }
      return false;
    };
    if (v_share >= truncation_->mixture_share && first_accepted()) return;
    // Otherwise (the share drawn from g, or no candidate accepted): the mixture's draw below.
  } else if (v < alpha_) {
    return;  // the prior's draw
  }
  const auto& maps = transform_.maps();
  for (int i = 0; i < d; ++i) {
    const CoordinateMap m = maps[static_cast<std::size_t>(i)];
    if (m == CoordinateMap::box) u(i, 0) = std::clamp(u(i, 0), -kBoxClamp, kBoxClamp);
    if (m == CoordinateMap::positive) u(i, 0) = std::clamp(u(i, 0), -kPositiveClamp, kPositiveClamp);
  }
  const Eigen::MatrixXd t = transform_.to_constrained(u);
  for (int i = 0; i < d; ++i) {
    double x = t(i, 0);
    if (maps[static_cast<std::size_t>(i)] == CoordinateMap::box) {
      const double a = transform_.low()[i], b = transform_.high()[i];
      if (x <= a) x = std::nextafter(a, b);  // rounded onto a face: one ulp inside
      if (x >= b) x = std::nextafter(b, a);
    }
    theta[static_cast<std::size_t>(i)] = x;
  }
}

std::string RoundProposal::description() const {
  if (!mixture_) return prior_->spec();
  Fnv1a h;
  h.add(alpha_);
  h.add(mixture_->weights);
  h.add(mixture_->means);
  for (const auto& c : mixture_->covariances) h.add(c);
  h.add(prior_->spec());
  if (truncation_) {
    h.add(truncation_->threshold);
    h.add(truncation_->width);
    h.add(static_cast<double>(truncation_->candidates));
    h.add(truncation_->mixture_share);
  }
  const int K = mixture_->components();
  const std::string part =
      truncation_ ? fmt::format("truncated-prior(τ {:.6g}, h {:.6g}, Z {:.4g}, mixture share {:.6g}; ",
                                truncation_->threshold, truncation_->width, std::exp(log_z_), truncation_->mixture_share)
                  : std::string("mixture(");
  return fmt::format("{:.6g}·{}{} component{}, fingerprint {:016x}) + {:.6g}·{}", 1.0 - alpha_, part, K,
                     K == 1 ? "" : "s", h.value(), alpha_, prior_->spec());
}

// ---- PooledProposal ---------------------------------------------------------------------------

PooledProposal::PooledProposal(std::vector<RoundProposal> rounds, std::vector<std::uint64_t> pair_counts)
    : rounds_(std::move(rounds)), counts_(std::move(pair_counts)) {
  if (rounds_.empty()) throw ProposalError("PooledProposal: no rounds; give at least one");
  if (rounds_.size() != counts_.size()) {
    throw ProposalError(fmt::format("PooledProposal: {} rounds but {} pair counts; give one count per round",
                                    rounds_.size(), counts_.size()));
  }
  const RoundProposal& first = rounds_.front();
  double total = 0.0;
  for (std::size_t r = 0; r < rounds_.size(); ++r) {
    if (counts_[r] == 0) {
      throw ProposalError(fmt::format("PooledProposal: round {} has 0 pairs; leave rounds without pairs out", r + 1));
    }
    total += static_cast<double>(counts_[r]);
    const RoundProposal& q = rounds_[r];
    if (q.dim() != first.dim() || q.prior().spec() != first.prior().spec() ||
        !same_transform(q.transform(), first.transform())) {
      throw ProposalError(fmt::format("PooledProposal: round {} uses prior {} but round 1 uses {}; every round must "
                                      "share the prior (and so its unconstrained coordinates)",
                                      r + 1, q.prior().spec(), first.prior().spec()));
    }
  }
  log_weights_.resize(static_cast<Eigen::Index>(rounds_.size()));
  for (std::size_t r = 0; r < rounds_.size(); ++r) {
    log_weights_[static_cast<Eigen::Index>(r)] = std::log(static_cast<double>(counts_[r])) - std::log(total);
  }
}

Eigen::RowVectorXd PooledProposal::log_density_u(const Eigen::MatrixXd& u) const {
  check_u_rows(u, dim(), "PooledProposal");
  Eigen::MatrixXd terms(static_cast<Eigen::Index>(rounds_.size()), u.cols());
  for (std::size_t r = 0; r < rounds_.size(); ++r) {
    terms.row(static_cast<Eigen::Index>(r)) =
        (rounds_[r].log_density_u(u).array() + log_weights_[static_cast<Eigen::Index>(r)]).matrix();
  }
  return log_sum_exp_columns(terms);
}

Eigen::MatrixXd PooledProposal::score_u(const Eigen::MatrixXd& u) const {
  check_u_rows(u, dim(), "PooledProposal");
  const Eigen::Index n = u.cols(), d = u.rows();
  // Streaming softmax over rounds per column (memory O(d·n), not rounds·d·n): running maximum m,
  // running Σ e^{a_r − m} and Σ e^{a_r − m}·s_r, rescaled whenever the maximum grows.
  Eigen::RowVectorXd m = Eigen::RowVectorXd::Constant(n, -kInf);
  Eigen::RowVectorXd total = Eigen::RowVectorXd::Zero(n);
  Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(d, n);
  Eigen::RowVectorXd lq;
  Eigen::MatrixXd s;
  for (std::size_t r = 0; r < rounds_.size(); ++r) {
    rounds_[r].evaluate_u(u, &lq, &s);
    const double lw = log_weights_[static_cast<Eigen::Index>(r)];
    for (Eigen::Index j = 0; j < n; ++j) {
      const double a = lw + lq[j];
      if (a == -kInf) continue;  // this round has no mass here
      if (std::isnan(a) || std::isnan(m[j])) {  // NaN in, NaN out
        m[j] = total[j] = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      if (a > m[j]) {
        const double shrink = m[j] == -kInf ? 0.0 : std::exp(m[j] - a);
        total[j] *= shrink;
        acc.col(j) *= shrink;
        m[j] = a;
      }
      const double e = std::exp(a - m[j]);
      if (e > 0.0) {
        total[j] += e;
        acc.col(j) += e * s.col(j);
      }
    }
  }
  for (Eigen::Index j = 0; j < n; ++j) acc.col(j) /= total[j];  // 0/0 = NaN where no round has mass
  return acc;
}

std::string PooledProposal::description() const {
  std::string s = "pooled(";
  for (std::size_t r = 0; r < rounds_.size(); ++r) {
    const bool compound = rounds_[r].mixture().has_value();
    s += fmt::format("{}{}·{}{}{}", r ? " + " : "", counts_[r], compound ? "(" : "", rounds_[r].description(),
                     compound ? ")" : "");
  }
  return s + ")";
}

// ---- ProposalPrior ----------------------------------------------------------------------------

namespace {

void check_span(std::size_t size, int dim, const char* what) {
  if (size != static_cast<std::size_t>(dim)) {
    throw std::invalid_argument(
        fmt::format("ProposalPrior: {} has {} entries but the proposal has dimension {}", what, size, dim));
  }
}

double focus_log_density(const RoundProposal& q, const Eigen::MatrixXd& u) {
  Eigen::RowVectorXd l;
  q.evaluate_focus_u(u, &l, nullptr);
  return l[0];
}

int checked_round(int round) {
  if (round < 1) throw ProposalError(fmt::format("ProposalPrior: round {} must be at least 1", round));
  return round;
}

}  // namespace

ProposalPrior::ProposalPrior(RoundProposal proposal, int round)
    : Prior(proposal.dim()), proposal_(std::move(proposal)), round_(checked_round(round)) {}

void ProposalPrior::sample(CounterRng& rng, std::span<double> theta) const { proposal_.sample_theta(rng, theta); }

bool ProposalPrior::in_support(std::span<const double> theta) const { return proposal_.prior().in_support(theta); }

double ProposalPrior::log_density(std::span<const double> theta) const {
  check_span(theta.size(), dim(), "theta");
  const Prior& prior = proposal_.prior();
  if (!prior.in_support(theta)) return -kInf;
  const double lp = prior.log_density(theta);
  const auto& g = proposal_.mixture();
  const double alpha = proposal_.defensive_fraction();
  if (!g || alpha == 1.0) return lp;
  const Eigen::MatrixXd u =
      proposal_.transform().to_unconstrained(Eigen::Map<const Eigen::MatrixXd>(theta.data(), dim(), 1));
  const double prior_part = std::log(alpha) + lp;
  if (!u.allFinite()) return prior_part;  // on a box face: the mixture part vanishes there
  const double mixture_part = std::log1p(-alpha) + focus_log_density(proposal_, u) -
                              proposal_.transform().log_abs_det_jacobian(u)[0];
  return log_add(prior_part, mixture_part);
}

void ProposalPrior::grad_log_density(std::span<const double> theta, std::span<double> grad) const {
  check_span(theta.size(), dim(), "theta");
  check_span(grad.size(), dim(), "grad");
  const Prior& prior = proposal_.prior();
  prior.grad_log_density(theta, grad);  // ∇θ log π
  const auto& g = proposal_.mixture();
  const double alpha = proposal_.defensive_fraction();
  if (!g || alpha == 1.0) return;
  const ParameterTransform& tr = proposal_.transform();
  const Eigen::MatrixXd u = tr.to_unconstrained(Eigen::Map<const Eigen::MatrixXd>(theta.data(), dim(), 1));
  if (!u.allFinite()) return;  // on a box face: the prior part alone
  Eigen::RowVectorXd lg;
  Eigen::MatrixXd gg;
  proposal_.evaluate_focus_u(u, &lg, &gg);
  const double prior_part = std::log(alpha) + prior.log_density(theta);
  const double mixture_part = std::log1p(-alpha) + lg[0] - tr.log_abs_det_jacobian(u)[0];
  const double total = log_add(prior_part, mixture_part);
  const double rp = std::exp(prior_part - total), rg = std::exp(mixture_part - total);
  const Eigen::MatrixXd glj = tr.grad_log_abs_det_jacobian(u);
  const Eigen::MatrixXd jac = tr.jacobian(u);
  for (int i = 0; i < dim(); ++i) {
    const auto ii = static_cast<std::size_t>(i);
    double v = rp * grad[ii];
    if (rg > 0.0) v += rg * (gg(i, 0) - glj(i, 0)) / jac(i, 0);
    grad[ii] = v;
  }
}

std::string ProposalPrior::spec() const { return fmt::format("proposal(round {}: {})", round_, proposal_.description()); }

Eigen::VectorXd ProposalPrior::lower_bounds() const { return proposal_.prior().lower_bounds(); }
Eigen::VectorXd ProposalPrior::upper_bounds() const { return proposal_.prior().upper_bounds(); }

}  // namespace fsbi
