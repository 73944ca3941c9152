// Rank-normalised split R-hat and bulk effective sample size (Vehtari, Gelman, Simpson,
// Carpenter & Bürkner 2021, "Rank-normalization, folding, and localization: an improved R-hat
// for assessing convergence of MCMC"), following the reference implementation in the R package
// `posterior` (rhat, ess_bulk). docs/sampling.md states the definitions.
#include "fsbi/sampler.hpp"
#include "sampling/internal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace fsbi {
namespace sampling {
namespace {

double poly8(const double (&c)[8], double x) {
  double s = c[7];
  for (int i = 6; i >= 0; --i) s = s * x + c[i];
  return s;
}

}  // namespace

// Wichura (1988), algorithm AS 241 (PPND16): relative accuracy about 1e-16.
double normal_quantile(double p) {
  static constexpr double a[8] = {3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
                                  1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
                                  3.3430575583588128105e4, 2.5090809287301226727e3};
  static constexpr double b[8] = {1.0, 4.2313330701600911252e1, 6.8718700749205790830e2,
                                  5.3941960214247511077e3, 2.1213794301586595867e4, 3.9307895800092710610e4,
                                  2.8729085735721942674e4, 5.2264952788528545610e3};
  static constexpr double c[8] = {1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
                                  3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
                                  2.27238449892691845833e-2, 7.74545014278341407640e-4};
  static constexpr double d[8] = {1.0, 2.05319162663775882187e0, 1.67638483018380384940e0,
                                  6.89767334985100004550e-1, 1.48103976427480074590e-1, 1.51986665636164571966e-2,
                                  5.47593808499534494600e-4, 1.05075007164441684324e-9};
  static constexpr double e[8] = {6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
                                  2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
                                  2.71155556874348757815e-5, 2.01033439929228813265e-7};
  static constexpr double f[8] = {1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1,
                                  1.48753612908506148525e-2, 7.86869131145613259100e-4, 1.84631831751005468180e-5,
                                  1.42151175831644588870e-7, 2.04426310338993978564e-15};
  if (!(p > 0.0 && p < 1.0)) {
    if (p == 0.0) return -std::numeric_limits<double>::infinity();
    if (p == 1.0) return std::numeric_limits<double>::infinity();
    return std::numeric_limits<double>::quiet_NaN();
  }
  const double q = p - 0.5;
  if (std::abs(q) <= 0.425) {
    const double r = 0.180625 - q * q;
    return q * poly8(a, r) / poly8(b, r);
  }
  double r = std::sqrt(-std::log(q < 0 ? p : 1.0 - p));
  double v;
  if (r <= 5.0) {
    r -= 1.6;
    v = poly8(c, r) / poly8(d, r);
  } else {
    r -= 5.0;
    v = poly8(e, r) / poly8(f, r);
  }
  return q < 0 ? -v : v;
}

// Split chains: each chain's first and second halves become separate columns (the middle draw
// of an odd-length chain is dropped, as in `posterior`). Returns half-length × 2·chains.
Eigen::MatrixXd split_chains(const std::vector<Eigen::MatrixXd>& chains, Eigen::Index param) {
  const Eigen::Index n = chains.front().rows(), half = n / 2;
  Eigen::MatrixXd out(half, 2 * static_cast<Eigen::Index>(chains.size()));
  for (std::size_t c = 0; c < chains.size(); ++c) {
    const auto col = chains[c].col(param);
    out.col(2 * static_cast<Eigen::Index>(c)) = col.head(half);
    out.col(2 * static_cast<Eigen::Index>(c) + 1) = col.tail(half);
  }
  return out;
}

// Pooled rank normalisation: average ranks r (ties share their mean rank) over all entries, then
// z = Φ⁻¹((r − 3/8) / (S + 1/4)) (Blom's offset).
Eigen::MatrixXd rank_normalise(const Eigen::MatrixXd& x) {
  const Eigen::Index s = x.size();
  std::vector<Eigen::Index> order(static_cast<std::size_t>(s));
  std::iota(order.begin(), order.end(), Eigen::Index{0});
  const double* v = x.data();
  std::stable_sort(order.begin(), order.end(), [v](Eigen::Index i, Eigen::Index j) { return v[i] < v[j]; });
  Eigen::MatrixXd z(x.rows(), x.cols());
  double* out = z.data();
  const double denom = static_cast<double>(s) + 0.25;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i + 1;
    while (j < order.size() && v[order[j]] == v[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1 .. j
    const double zr = normal_quantile((rank - 0.375) / denom);
    for (std::size_t k = i; k < j; ++k) out[order[k]] = zr;
    i = j;
  }
  return z;
}

// Basic R-hat of columns as chains: sqrt(((N−1)/N·W + B/N) / W).
double rhat_basic(const Eigen::MatrixXd& x) {
  const Eigen::Index n = x.rows(), m = x.cols();
  if (n < 2 || m < 2) return std::numeric_limits<double>::quiet_NaN();
  const Eigen::RowVectorXd means = x.colwise().mean();
  const double w = (x.rowwise() - means).colwise().squaredNorm().sum() / (static_cast<double>(n - 1) * static_cast<double>(m));
  const double b_over_n = (means.array() - means.mean()).square().sum() / static_cast<double>(m - 1);
  if (!(w > 0)) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt((static_cast<double>(n - 1) / static_cast<double>(n) * w + b_over_n) / w);
}

// ESS of columns as chains, Geyer's initial monotone sequence on the combined autocorrelation
// ρ_t = 1 − (W − mean_c acov_c(t)) / var⁺. Lags are computed only as far as the truncation needs.
double ess_basic(const Eigen::MatrixXd& x) {
  const Eigen::Index n = x.rows(), m = x.cols();
  if (n < 4) return std::numeric_limits<double>::quiet_NaN();
  const Eigen::MatrixXd centred = x.rowwise() - x.colwise().mean();
  const Eigen::RowVectorXd means = x.colwise().mean();
  const double dn = static_cast<double>(n);
  // Mean over chains of the biased autocovariance at lag t.
  auto acov = [&](Eigen::Index t) {
    double s = 0;
    for (Eigen::Index c = 0; c < m; ++c)
      s += centred.col(c).head(n - t).dot(centred.col(c).tail(n - t));
    return s / (dn * static_cast<double>(m));
  };
  const double mean_var = acov(0) * dn / (dn - 1);
  double var_plus = mean_var * (dn - 1) / dn;
  if (m > 1) var_plus += (means.array() - means.mean()).square().sum() / static_cast<double>(m - 1);
  if (!(var_plus > 0) || !std::isfinite(var_plus)) return std::numeric_limits<double>::quiet_NaN();
  auto rho = [&](Eigen::Index t) { return 1.0 - (mean_var - acov(t)) / var_plus; };

  std::vector<double> r(static_cast<std::size_t>(n), 0.0);
  Eigen::Index t = 0;
  double even = 1.0, odd = rho(1);
  r[0] = even;
  r[1] = odd;
  while (t < n - 5 && std::isfinite(even + odd) && even + odd > 0) {
    t += 2;
    even = rho(t);
    odd = rho(t + 1);
    if (even + odd >= 0) {
      r[static_cast<std::size_t>(t)] = even;
      r[static_cast<std::size_t>(t + 1)] = odd;
    }
  }
  const Eigen::Index max_t = t;
  // The improved estimate (less variance for antithetic chains) adds the last positive even lag.
  if (even > 0) r[static_cast<std::size_t>(max_t)] = even;
  // Initial monotone sequence: pair sums may not increase.
  for (Eigen::Index s = 2; s <= max_t - 2; s += 2) {
    const auto k = static_cast<std::size_t>(s);
    if (r[k] + r[k + 1] > r[k - 2] + r[k - 1]) {
      r[k] = r[k + 1] = 0.5 * (r[k - 2] + r[k - 1]);
    }
  }
  double tau = -1.0 + r[static_cast<std::size_t>(max_t)];
  for (Eigen::Index k = 0; k < max_t; ++k) tau += 2.0 * r[static_cast<std::size_t>(k)];
  const double total = dn * static_cast<double>(m);
  tau = std::max(tau, 1.0 / std::log10(total));
  return total / tau;
}

namespace {

void check_chains(const std::vector<Eigen::MatrixXd>& chains, const char* what) {
  if (chains.empty()) throw std::invalid_argument(fmt::format("{}: no chains given", what));
  const Eigen::Index n = chains.front().rows(), d = chains.front().cols();
  for (std::size_t c = 0; c < chains.size(); ++c)
    if (chains[c].rows() != n || chains[c].cols() != d)
      throw std::invalid_argument(fmt::format(
          "{}: chain {} is {} × {}, chain 0 is {} × {}; all chains need the same draws × parameters",
          what, c, chains[c].rows(), chains[c].cols(), n, d));
  for (std::size_t c = 0; c < chains.size(); ++c)
    if (!chains[c].allFinite())
      throw std::invalid_argument(fmt::format("{}: chain {} holds a non-finite draw", what, c));
}

}  // namespace
}  // namespace sampling

Eigen::VectorXd split_rhat(const std::vector<Eigen::MatrixXd>& chains) {
  sampling::check_chains(chains, "split_rhat");
  const Eigen::Index d = chains.front().cols();
  Eigen::VectorXd out(d);
  for (Eigen::Index j = 0; j < d; ++j) {
    const Eigen::MatrixXd x = sampling::split_chains(chains, j);
    if (x.rows() < 2) {
      out(j) = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    const double bulk = sampling::rhat_basic(sampling::rank_normalise(x));
    // Folded draws |x − median| catch chains that differ in scale rather than location.
    Eigen::VectorXd pooled = Eigen::Map<const Eigen::VectorXd>(x.data(), x.size());
    std::vector<double> sorted(pooled.data(), pooled.data() + pooled.size());
    std::sort(sorted.begin(), sorted.end());
    const std::size_t s = sorted.size();
    const double median = s % 2 ? sorted[s / 2] : 0.5 * (sorted[s / 2 - 1] + sorted[s / 2]);
    const Eigen::MatrixXd folded = (x.array() - median).abs().matrix();
    const double tail = sampling::rhat_basic(sampling::rank_normalise(folded));
    out(j) = std::isnan(bulk) || std::isnan(tail) ? std::numeric_limits<double>::quiet_NaN() : std::max(bulk, tail);
  }
  return out;
}

Eigen::VectorXd effective_sample_size(const std::vector<Eigen::MatrixXd>& chains) {
  sampling::check_chains(chains, "effective_sample_size");
  const Eigen::Index d = chains.front().cols();
  Eigen::VectorXd out(d);
  for (Eigen::Index j = 0; j < d; ++j)
    out(j) = sampling::ess_basic(sampling::rank_normalise(sampling::split_chains(chains, j)));
  return out;
}

}  // namespace fsbi
