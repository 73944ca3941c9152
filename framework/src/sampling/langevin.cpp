// The preconditioned Langevin transition shared by ULA, MALA and the SMC moves.
#include "fsbi/random.hpp"
#include "sampling/internal.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace fsbi::sampling {

States States::columns(Eigen::Index begin, Eigen::Index length) const {
  return {u.middleCols(begin, length), grad_prior.middleCols(begin, length), grad_lik.middleCols(begin, length),
          log_prior.segment(begin, length), log_lik.segment(begin, length)};
}

void States::set_columns(Eigen::Index begin, const States& from) {
  const Eigen::Index n = from.size();
  u.middleCols(begin, n) = from.u;
  grad_prior.middleCols(begin, n) = from.grad_prior;
  grad_lik.middleCols(begin, n) = from.grad_lik;
  log_prior.segment(begin, n) = from.log_prior;
  log_lik.segment(begin, n) = from.log_lik;
}

void States::set_column(Eigen::Index dst, const States& from, Eigen::Index src) {
  u.col(dst) = from.u.col(src);
  grad_prior.col(dst) = from.grad_prior.col(src);
  grad_lik.col(dst) = from.grad_lik.col(src);
  log_prior(dst) = from.log_prior(src);
  log_lik(dst) = from.log_lik(src);
}

States States::gather(const std::vector<Eigen::Index>& index) const {
  States out{Eigen::MatrixXd(u.rows(), static_cast<Eigen::Index>(index.size())), {}, {}, {}, {}};
  out.grad_prior.resize(u.rows(), out.u.cols());
  out.grad_lik.resize(u.rows(), out.u.cols());
  out.log_prior.resize(out.u.cols());
  out.log_lik.resize(out.u.cols());
  for (std::size_t i = 0; i < index.size(); ++i) out.set_column(static_cast<Eigen::Index>(i), *this, index[i]);
  return out;
}

namespace {

void check_shape(const char* what, Eigen::Index rows, Eigen::Index cols, Eigen::Index want_rows,
                 Eigen::Index want_cols) {
  if (rows != want_rows || cols != want_cols)
    throw std::runtime_error(fmt::format("sampling target: {} returned {} × {} for a batch of {} points "
                                         "(expected {} × {})",
                                         what, rows, cols, want_cols, want_rows, want_cols));
}

}  // namespace

States evaluate(const SamplingTarget& target, Eigen::MatrixXd u, bool with_log) {
  const Eigen::Index d = u.rows(), n = u.cols();
  States s;
  s.grad_prior = target.grad_log_prior(u);
  check_shape("grad_log_prior", s.grad_prior.rows(), s.grad_prior.cols(), d, n);
  s.grad_lik = target.grad_log_likelihood(u);
  check_shape("grad_log_likelihood", s.grad_lik.rows(), s.grad_lik.cols(), d, n);
  if (with_log) {
    s.log_prior = target.log_prior(u);
    check_shape("log_prior", 1, s.log_prior.cols(), 1, n);
    s.log_lik = target.log_likelihood(u);
    check_shape("log_likelihood", 1, s.log_lik.cols(), 1, n);
  } else {
    s.log_prior = Eigen::RowVectorXd::Constant(n, std::numeric_limits<double>::quiet_NaN());
    s.log_lik = s.log_prior;
  }
  s.u = std::move(u);
  return s;
}

void langevin_block(const LangevinStep& step, States& s, Eigen::Index begin, Eigen::Index length,
                    double* accept_prob, double* kappa) {
  const Eigen::Index d = s.u.rows();
  const States cur = s.columns(begin, length);
  const Eigen::VectorXd& m = step.pc->m;
  const Eigen::VectorXd& sqrt_m = step.pc->sqrt_m;
  const double eps = step.eps, beta = step.beta, half_eps2 = 0.5 * eps * eps;

  // Fixed draws per column: d normals, then (MALA) one uniform.
  Eigen::MatrixXd xi(d, length);
  Eigen::VectorXd log_u(length);
  for (Eigen::Index j = 0; j < length; ++j) {
    CounterRng rng(step.seed, Stream::sampling, static_cast<std::uint64_t>(begin + j), step.attempt);
    for (Eigen::Index i = 0; i < d; ++i) xi(i, j) = rng.normal();
    log_u(j) = step.metropolis ? std::log(rng.uniform()) : 0.0;
  }

  auto grad = [beta](const States& x) -> Eigen::MatrixXd {
    return beta == 0 ? x.grad_prior : Eigen::MatrixXd(x.grad_prior + beta * x.grad_lik);
  };
  const Eigen::MatrixXd g = grad(cur);
  Eigen::MatrixXd proposal = cur.u + half_eps2 * (m.asDiagonal() * g) + eps * (sqrt_m.asDiagonal() * xi);
  const bool with_log = step.metropolis || step.with_log;
  const States prop = evaluate(*step.target, std::move(proposal), with_log);
  const Eigen::MatrixXd gp = grad(prop);

  for (Eigen::Index j = 0; j < length; ++j) {
    const Eigen::Index c = begin + j;
    const bool finite = prop.u.col(j).allFinite() && gp.col(j).allFinite();
    bool take = false;
    if (step.metropolis) {
      double log_alpha = -std::numeric_limits<double>::infinity();
      if (finite) {
        // log q(u | u') − log q(u' | u); the forward residual is ε M^{1/2} ξ by construction.
        const Eigen::VectorXd back = prop.u.col(j) + half_eps2 * m.cwiseProduct(gp.col(j));
        const double lq_rev = -0.5 * ((cur.u.col(j) - back).cwiseQuotient(sqrt_m).squaredNorm()) / (eps * eps);
        const double lq_fwd = -0.5 * xi.col(j).squaredNorm();
        const double lt = tempered(prop.log_prior(j), prop.log_lik(j), beta);
        log_alpha = lt - tempered(cur.log_prior(j), cur.log_lik(j), beta) + lq_rev - lq_fwd;
        // A NaN or +∞ density is a broken model, not a better point: reject.
        if (std::isnan(log_alpha) || std::isnan(lt) || lt == std::numeric_limits<double>::infinity())
          log_alpha = -std::numeric_limits<double>::infinity();
      }
      if (accept_prob) accept_prob[c] = log_alpha >= 0 ? 1.0 : std::exp(log_alpha);
      take = log_u(j) < log_alpha;
    } else {
      double k = std::numeric_limits<double>::quiet_NaN();
      if (finite) {
        const double du = (prop.u.col(j) - cur.u.col(j)).cwiseQuotient(sqrt_m).norm();
        const double dg = (gp.col(j) - g.col(j)).cwiseProduct(sqrt_m).norm();
        if (du > 0 && std::isfinite(dg)) k = dg / du;
      }
      if (kappa) kappa[c] = k;
      take = finite && !(step.guard > 0 && !(eps * eps * k <= step.guard));
      if (accept_prob) accept_prob[c] = take ? 1.0 : 0.0;
    }
    if (take && step.move) s.set_column(c, prop, j);
  }
}

double quantile_finite(std::vector<double> v, double q) {
  std::erase_if(v, [](double x) { return !std::isfinite(x); });
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

}  // namespace fsbi::sampling
