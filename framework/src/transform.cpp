// Training coordinates: θ ↔ u ↔ z and the standardisation of x (fsbi/transform.hpp,
// docs/training-coordinates.md).
//
// Numerics of the box map θ = a + (b − a)·σ(u). Everything is written in e = exp(−|u|) ∈ (0, 1],
// which never overflows:
//   σ(|u|) = 1/(1 + e),  σ(−|u|) = e/(1 + e),  σ(u)·σ(−u) = e/(1 + e)²
//   log σ(u) + log σ(−u) = −|u| − 2·log1p(e)
//   1 − 2σ(u) = −tanh(u/2),  1 − tanh²(u/2) = 4·σ(u)·σ(−u) = 4e/(1 + e)²
// so the Jacobian, its log and the feature derivatives keep full relative precision in the tails
// (1 − tanh² computed directly would cancel to 0 long before e underflows). θ is formed from the
// nearer face (a + (b−a)σ(u) for u < 0, b − (b−a)σ(−u) for u ≥ 0) and u from both distances,
// u = log(θ − a) − log(b − θ), so θ → u → θ is accurate near either face.

#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/transform.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <span>
#include <stdexcept>
#include <utility>

namespace fsbi {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSqrt3 = std::numbers::sqrt3;

// ---- Scalar maps ------------------------------------------------------------------------------

// θ = a + (b − a)·σ(u), from the nearer face.
double box_to_constrained(double u, double a, double b) {
  const double e = std::exp(-std::abs(u));
  const double near = (b - a) * (e / (1.0 + e));  // (b − a)·σ(−|u|): the distance to the nearer face
  const double theta = u < 0.0 ? a + near : b - near;
  return std::clamp(theta, a, b);  // NaN passes through clamp unchanged
}

// u = logit((θ − a)/(b − a)) = log(θ − a) − log(b − θ); ±inf on a face, NaN outside the box.
double box_to_unconstrained(double theta, double a, double b) {
  return std::log(theta - a) - std::log(b - theta);
}

// dθ/du = (b − a)·σ(u)·σ(−u).
double box_jacobian(double u, double a, double b) {
  const double e = std::exp(-std::abs(u));
  const double one_plus = 1.0 + e;
  return (b - a) * (e / (one_plus * one_plus));
}

// log σ(u) + log σ(−u) (without the log(b − a)).
double log_sigmoid_pair(double u) {
  const double abs_u = std::abs(u);
  return -abs_u - 2.0 * std::log1p(std::exp(-abs_u));
}

// 1 − tanh²(u/2) = 4·σ(u)·σ(−u).
double sech2_half(double u) {
  const double e = std::exp(-std::abs(u));
  const double one_plus = 1.0 + e;
  return 4.0 * e / (one_plus * one_plus);
}

// ---- Validation -------------------------------------------------------------------------------

void check_rows(const Eigen::MatrixXd& m, int dim, const char* who, const char* what) {
  if (m.rows() != dim) {
    throw std::invalid_argument(fmt::format("{}: {} has {} rows but the transform has dimension {} (one "
                                            "parameter per row, one sample per column)",
                                            who, what, m.rows(), dim));
  }
}

void check_same_shape(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, const char* who, const char* a_name,
                      const char* b_name) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) {
    throw std::invalid_argument(fmt::format("{}: {} is {}x{} but {} is {}x{}; they must have the same shape", who,
                                            a_name, a.rows(), a.cols(), b_name, b.rows(), b.cols()));
  }
}

void check_prior_dim(const Prior& prior, int dim, const char* who) {
  if (prior.dim() != dim) {
    throw std::invalid_argument(
        fmt::format("{}: the prior has dimension {} but the transform has dimension {}", who, prior.dim(), dim));
  }
}

// Mean and sample standard deviation (n − 1) of one row, two-pass; zero spread (or n = 1) → 1.
std::pair<double, double> row_mean_sd(const Eigen::MatrixXd& x, Eigen::Index row, const char* who) {
  const Eigen::Index n = x.cols();
  for (Eigen::Index j = 0; j < n; ++j) {
    if (!std::isfinite(x(row, j))) {
      throw std::invalid_argument(fmt::format("{}: entry ({}, {}) is {}; fit needs finite values", who, row, j,
                                              x(row, j)));
    }
  }
  const double mean = x.row(row).sum() / static_cast<double>(n);
  double ss = 0.0;
  for (Eigen::Index j = 0; j < n; ++j) {
    const double dev = x(row, j) - mean;
    ss += dev * dev;
  }
  const double sd = n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0.0;
  return {mean, sd > 0.0 && std::isfinite(sd) ? sd : 1.0};
}

}  // namespace

// ---- CoordinateMap ----------------------------------------------------------------------------

std::string_view to_string(CoordinateMap m) {
  switch (m) {
    case CoordinateMap::identity:
      return "identity";
    case CoordinateMap::box:
      return "box";
    case CoordinateMap::positive:
      return "positive";
  }
  return "unknown";
}

CoordinateMap parse_coordinate_map(std::string_view s) {
  if (s == "identity") return CoordinateMap::identity;
  if (s == "box") return CoordinateMap::box;
  if (s == "positive") return CoordinateMap::positive;
  throw std::invalid_argument(
      fmt::format("unknown coordinate map '{}'; use identity, box or positive", s));
}

// ---- ParameterTransform -----------------------------------------------------------------------

ParameterTransform::ParameterTransform(std::vector<CoordinateMap> maps, Eigen::VectorXd low,
                                       Eigen::VectorXd high)
    : maps_(std::move(maps)), low_(std::move(low)), high_(std::move(high)) {
  const auto d = static_cast<Eigen::Index>(maps_.size());
  const bool any_box = std::any_of(maps_.begin(), maps_.end(), [](CoordinateMap m) { return m == CoordinateMap::box; });
  if (low_.size() == 0 && high_.size() == 0 && !any_box) {
    // No box: the bounds are informational only; fill in each map's natural range.
    low_.resize(d);
    high_.setConstant(d, kInf);
    for (Eigen::Index j = 0; j < d; ++j) low_[j] = maps_[static_cast<std::size_t>(j)] == CoordinateMap::positive ? 0.0 : -kInf;
  }
  if (low_.size() != d || high_.size() != d) {
    throw std::invalid_argument(fmt::format("ParameterTransform: {} coordinate maps but low has {} and high {} "
                                            "entries; give one bound per coordinate",
                                            d, low_.size(), high_.size()));
  }
  for (Eigen::Index j = 0; j < d; ++j) {
    const CoordinateMap m = maps_[static_cast<std::size_t>(j)];
    if (m != CoordinateMap::box && m != CoordinateMap::positive && m != CoordinateMap::identity) {
      throw std::invalid_argument(fmt::format("ParameterTransform: coordinate {} has an invalid map", j));
    }
    if (m == CoordinateMap::box &&
        !(std::isfinite(low_[j]) && std::isfinite(high_[j]) && low_[j] < high_[j] && std::isfinite(high_[j] - low_[j]))) {
      throw std::invalid_argument(fmt::format("ParameterTransform: box coordinate {} needs finite low < high with a "
                                              "finite width, got [{}, {}]",
                                              j, low_[j], high_[j]));
    }
  }
}

ParameterTransform ParameterTransform::for_prior(const Prior& prior) {
  const std::string_view kind = prior.kind();
  CoordinateMap map;
  if (kind == "uniform") {
    map = CoordinateMap::box;
  } else if (kind == "lognormal") {
    map = CoordinateMap::positive;
  } else if (kind == "normal" || kind == "mvnormal") {
    map = CoordinateMap::identity;
  } else {
    throw std::invalid_argument(fmt::format("ParameterTransform::for_prior: no coordinate map for a '{}' prior", kind));
  }
  return ParameterTransform(std::vector<CoordinateMap>(static_cast<std::size_t>(prior.dim()), map),
                            prior.lower_bounds(), prior.upper_bounds());
}

Eigen::MatrixXd ParameterTransform::to_unconstrained(const Eigen::MatrixXd& theta) const {
  check_rows(theta, dim(), "ParameterTransform::to_unconstrained", "theta");
  Eigen::MatrixXd u(theta.rows(), theta.cols());
  for (int i = 0; i < dim(); ++i) {
    switch (maps_[static_cast<std::size_t>(i)]) {
      case CoordinateMap::identity:
        u.row(i) = theta.row(i);
        break;
      case CoordinateMap::positive:
        u.row(i) = theta.row(i).array().log();
        break;
      case CoordinateMap::box:
        for (Eigen::Index j = 0; j < theta.cols(); ++j) u(i, j) = box_to_unconstrained(theta(i, j), low_[i], high_[i]);
        break;
    }
  }
  return u;
}

Eigen::MatrixXd ParameterTransform::to_constrained(const Eigen::MatrixXd& u) const {
  check_rows(u, dim(), "ParameterTransform::to_constrained", "u");
  Eigen::MatrixXd theta(u.rows(), u.cols());
  for (int i = 0; i < dim(); ++i) {
    switch (maps_[static_cast<std::size_t>(i)]) {
      case CoordinateMap::identity:
        theta.row(i) = u.row(i);
        break;
      case CoordinateMap::positive:
        theta.row(i) = u.row(i).array().exp();
        break;
      case CoordinateMap::box:
        for (Eigen::Index j = 0; j < u.cols(); ++j) theta(i, j) = box_to_constrained(u(i, j), low_[i], high_[i]);
        break;
    }
  }
  return theta;
}

Eigen::MatrixXd ParameterTransform::jacobian(const Eigen::MatrixXd& u) const {
  check_rows(u, dim(), "ParameterTransform::jacobian", "u");
  Eigen::MatrixXd jac(u.rows(), u.cols());
  for (int i = 0; i < dim(); ++i) {
    switch (maps_[static_cast<std::size_t>(i)]) {
      case CoordinateMap::identity:
        jac.row(i).setOnes();
        break;
      case CoordinateMap::positive:
        jac.row(i) = u.row(i).array().exp();
        break;
      case CoordinateMap::box:
        for (Eigen::Index j = 0; j < u.cols(); ++j) jac(i, j) = box_jacobian(u(i, j), low_[i], high_[i]);
        break;
    }
  }
  return jac;
}

Eigen::RowVectorXd ParameterTransform::log_abs_det_jacobian(const Eigen::MatrixXd& u) const {
  check_rows(u, dim(), "ParameterTransform::log_abs_det_jacobian", "u");
  Eigen::RowVectorXd out = Eigen::RowVectorXd::Zero(u.cols());
  for (int i = 0; i < dim(); ++i) {
    switch (maps_[static_cast<std::size_t>(i)]) {
      case CoordinateMap::identity:
        break;
      case CoordinateMap::positive:
        out += u.row(i);
        break;
      case CoordinateMap::box: {
        const double log_width = std::log(high_[i] - low_[i]);
        for (Eigen::Index j = 0; j < u.cols(); ++j) out[j] += log_width + log_sigmoid_pair(u(i, j));
        break;
      }
    }
  }
  return out;
}

Eigen::MatrixXd ParameterTransform::grad_log_abs_det_jacobian(const Eigen::MatrixXd& u) const {
  check_rows(u, dim(), "ParameterTransform::grad_log_abs_det_jacobian", "u");
  Eigen::MatrixXd g(u.rows(), u.cols());
  for (int i = 0; i < dim(); ++i) {
    switch (maps_[static_cast<std::size_t>(i)]) {
      case CoordinateMap::identity:
        g.row(i).setZero();
        break;
      case CoordinateMap::positive:
        g.row(i).setOnes();
        break;
      case CoordinateMap::box:
        g.row(i) = -(0.5 * u.row(i).array()).tanh();  // 1 − 2σ(u)
        break;
    }
  }
  return g;
}

bool ParameterTransform::matches_box_prior(const Prior& prior) const {
  if (prior.kind() != "uniform" || prior.dim() != dim()) return false;
  const Eigen::VectorXd a = prior.lower_bounds();
  const Eigen::VectorXd b = prior.upper_bounds();
  for (int i = 0; i < dim(); ++i) {
    if (maps_[static_cast<std::size_t>(i)] != CoordinateMap::box || low_[i] != a[i] || high_[i] != b[i]) return false;
  }
  return true;
}

Eigen::RowVectorXd ParameterTransform::prior_log_density(const Prior& prior, const Eigen::MatrixXd& u) const {
  static constexpr const char* kWho = "ParameterTransform::prior_log_density";
  check_prior_dim(prior, dim(), kWho);
  check_rows(u, dim(), kWho, "u");
  if (matches_box_prior(prior)) {
    // π(θ) = Π 1/(b_i − a_i) cancels the (b_i − a_i) of the Jacobian: log π_u = Σ log σ(u_i)σ(−u_i),
    // evaluated without forming θ, so nothing depends on θ rounding onto a face for large |u|
    // and the log(b − a) terms cancel exactly. NaN in u gives NaN.
    Eigen::RowVectorXd out = Eigen::RowVectorXd::Zero(u.cols());
    for (int i = 0; i < dim(); ++i) {
      for (Eigen::Index j = 0; j < u.cols(); ++j) out[j] += log_sigmoid_pair(u(i, j));
    }
    return out;
  }
  const Eigen::MatrixXd theta = to_constrained(u);
  Eigen::RowVectorXd out = log_abs_det_jacobian(u);
  const auto d = static_cast<std::size_t>(dim());
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    const double lp = prior.log_density(std::span<const double>(theta.col(j).data(), d));
    out[j] = lp == -kInf ? -kInf : out[j] + lp;
  }
  return out;
}

Eigen::MatrixXd ParameterTransform::prior_score(const Prior& prior, const Eigen::MatrixXd& u) const {
  static constexpr const char* kWho = "ParameterTransform::prior_score";
  check_prior_dim(prior, dim(), kWho);
  check_rows(u, dim(), kWho, "u");
  Eigen::MatrixXd score = grad_log_abs_det_jacobian(u);
  // A uniform prior has ∇θ log π = 0 in its support: the score is that of the Jacobian alone
  // (1 − 2σ(u) for a box), with no θ formed.
  if (prior.kind() == "uniform") return score;
  const Eigen::MatrixXd theta = to_constrained(u);
  const Eigen::MatrixXd jac = jacobian(u);
  Eigen::MatrixXd grad(u.rows(), u.cols());
  const auto d = static_cast<std::size_t>(dim());
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    prior.grad_log_density(std::span<const double>(theta.col(j).data(), d), std::span<double>(grad.col(j).data(), d));
  }
  score.array() += jac.array() * grad.array();
  return score;
}

Eigen::MatrixXd ParameterTransform::score_to_theta(const Eigen::MatrixXd& u, const Eigen::MatrixXd& score_u) const {
  check_rows(u, dim(), "ParameterTransform::score_to_theta", "u");
  check_same_shape(u, score_u, "ParameterTransform::score_to_theta", "u", "score_u");
  return (score_u.array() / jacobian(u).array()).matrix();
}

Eigen::MatrixXd ParameterTransform::score_to_u(const Eigen::MatrixXd& u, const Eigen::MatrixXd& score_theta) const {
  check_rows(u, dim(), "ParameterTransform::score_to_u", "u");
  check_same_shape(u, score_theta, "ParameterTransform::score_to_u", "u", "score_theta");
  return (jacobian(u).array() * score_theta.array()).matrix();
}

// ---- FeatureMap -------------------------------------------------------------------------------

FeatureMap::FeatureMap(std::vector<CoordinateMap> maps, Eigen::VectorXd mean, Eigen::VectorXd scale)
    : maps_(std::move(maps)), mean_(std::move(mean)), scale_(std::move(scale)) {
  const auto d = static_cast<Eigen::Index>(maps_.size());
  if (mean_.size() != d || scale_.size() != d) {
    throw std::invalid_argument(fmt::format("FeatureMap: {} coordinate maps but mean has {} and scale {} entries; "
                                            "give one per coordinate",
                                            d, mean_.size(), scale_.size()));
  }
  for (Eigen::Index i = 0; i < d; ++i) {
    if (maps_[static_cast<std::size_t>(i)] == CoordinateMap::box) continue;  // mean/scale unused
    if (!std::isfinite(mean_[i]) || !(scale_[i] > 0.0) || !std::isfinite(scale_[i])) {
      throw std::invalid_argument(fmt::format(
          "FeatureMap: coordinate {} needs a finite mean and a finite scale > 0, got mean {} and scale {}", i,
          mean_[i], scale_[i]));
    }
  }
}

FeatureMap FeatureMap::fit(const ParameterTransform& transform, const Eigen::MatrixXd& u) {
  check_rows(u, transform.dim(), "FeatureMap::fit", "u");
  if (u.cols() == 0 && transform.dim() > 0) {
    throw std::invalid_argument("FeatureMap::fit: u has no samples (columns); fit needs at least one");
  }
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(transform.dim());
  Eigen::VectorXd scale = Eigen::VectorXd::Ones(transform.dim());
  for (int i = 0; i < transform.dim(); ++i) {
    if (transform.maps()[static_cast<std::size_t>(i)] == CoordinateMap::box) continue;
    const auto [m, s] = row_mean_sd(u, i, "FeatureMap::fit: u");
    mean[i] = m;
    scale[i] = s;
  }
  return FeatureMap(transform.maps(), std::move(mean), std::move(scale));
}

void FeatureMap::apply(const Eigen::MatrixXd& u, Eigen::MatrixXd& z, Eigen::MatrixXd& dz, Eigen::MatrixXd& d2z) const {
  const int d = static_cast<int>(maps_.size());
  if (u.rows() != d) {
    throw std::invalid_argument(fmt::format("FeatureMap::apply: u has {} rows but the feature map has dimension {} "
                                            "(one parameter per row, one sample per column)",
                                            u.rows(), d));
  }
  const Eigen::Index n = u.cols();
  z.resize(d, n);
  dz.resize(d, n);
  d2z.resize(d, n);
  for (int i = 0; i < d; ++i) {
    if (maps_[static_cast<std::size_t>(i)] == CoordinateMap::box) {
      for (Eigen::Index j = 0; j < n; ++j) {
        const double t = std::tanh(0.5 * u(i, j));
        const double s2 = sech2_half(u(i, j));  // 1 − t², accurate in the tails
        z(i, j) = kSqrt3 * t;
        dz(i, j) = 0.5 * kSqrt3 * s2;
        d2z(i, j) = -0.5 * kSqrt3 * t * s2;
      }
    } else {
      const double inv_s = 1.0 / scale_[i];
      z.row(i) = (u.row(i).array() - mean_[i]) * inv_s;
      dz.row(i).setConstant(inv_s);
      d2z.row(i).setZero();
    }
  }
}

void weigh_box_edges(const FeatureMap& features, const Eigen::MatrixXd& u, Eigen::MatrixXd& dz,
                     Eigen::MatrixXd& d2z, Eigen::MatrixXd& prior_score) {
  const auto d = static_cast<Eigen::Index>(features.maps().size());
  for (const Eigen::MatrixXd* m : std::initializer_list<const Eigen::MatrixXd*>{&u, &dz, &d2z, &prior_score}) {
    if (m->rows() != d || m->cols() != u.cols())
      throw std::invalid_argument(fmt::format("weigh_box_edges: a {} × {} matrix where u is {} × {} and the feature "
                                              "map has dimension {}; give u, dz, d2z and prior_score alike",
                                              m->rows(), m->cols(), u.rows(), u.cols(), d));
  }
  constexpr double max_weight = 1e12;
  for (Eigen::Index i = 0; i < d; ++i) {
    if (features.maps()[static_cast<std::size_t>(i)] != CoordinateMap::box) continue;
    for (Eigen::Index j = 0; j < u.cols(); ++j) {
      const double root_w = std::sqrt(std::min(max_weight, 1.0 / sech2_half(u(i, j))));  // √(κ/dz)
      dz(i, j) *= root_w;
      d2z(i, j) = 0.0;
      prior_score(i, j) *= root_w;
    }
  }
}

// ---- Standardizer -----------------------------------------------------------------------------

Standardizer::Standardizer(Eigen::VectorXd mean, Eigen::VectorXd scale)
    : mean_(std::move(mean)), scale_(std::move(scale)) {
  if (mean_.size() != scale_.size()) {
    throw std::invalid_argument(fmt::format("Standardizer: mean has {} entries but scale has {}; give one per feature",
                                            mean_.size(), scale_.size()));
  }
  for (Eigen::Index i = 0; i < scale_.size(); ++i) {
    if (!std::isfinite(mean_[i]) || !(scale_[i] > 0.0) || !std::isfinite(scale_[i])) {
      throw std::invalid_argument(fmt::format(
          "Standardizer: feature {} needs a finite mean and a finite scale > 0, got mean {} and scale {}", i,
          mean_[i], scale_[i]));
    }
  }
}

Standardizer Standardizer::fit(const Eigen::MatrixXd& x) {
  if (x.cols() == 0 && x.rows() > 0) {
    throw std::invalid_argument("Standardizer::fit: x has no samples (columns); fit needs at least one");
  }
  Eigen::VectorXd mean(x.rows());
  Eigen::VectorXd scale(x.rows());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const auto [m, s] = row_mean_sd(x, i, "Standardizer::fit: x");
    mean[i] = m;
    scale[i] = s;
  }
  return Standardizer(std::move(mean), std::move(scale));
}

Eigen::MatrixXd Standardizer::apply(const Eigen::MatrixXd& x) const {
  if (x.rows() != mean_.size()) {
    throw std::invalid_argument(fmt::format("Standardizer::apply: x has {} rows but the standardizer was fitted to {} "
                                            "features (one feature per row, one sample per column)",
                                            x.rows(), mean_.size()));
  }
  return ((x.colwise() - mean_).array().colwise() / scale_.array()).matrix();
}

}  // namespace fsbi
