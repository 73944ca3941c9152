// Sequential Monte Carlo by likelihood tempering: p_β ∝ π_u · L^β from β = 0 (the prior) to 1,
// with adaptive temperatures, systematic resampling and preconditioned MALA moves. docs/sampling.md.
#include "fsbi/progress.hpp"
#include "fsbi/random.hpp"
#include "sampling/internal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace fsbi::sampling {
namespace {

constexpr int max_temperatures = 10000;

// ESS / N of the weights exp(log_w + δ·log_lik) (δ = 0 ignores the likelihood, even −∞).
double relative_ess(const Eigen::VectorXd& log_w, const Eigen::RowVectorXd& log_lik, double delta) {
  const Eigen::Index n = log_w.size();
  Eigen::VectorXd w(n);
  for (Eigen::Index i = 0; i < n; ++i) w(i) = delta == 0 ? log_w(i) : log_w(i) + delta * log_lik(i);
  const double top = w.maxCoeff();
  if (!std::isfinite(top)) return 0.0;
  double s1 = 0, s2 = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double e = std::exp(w(i) - top);
    s1 += e;
    s2 += e * e;
  }
  return s1 * s1 / s2 / static_cast<double>(n);
}

// exp(log_w) / Σ exp(log_w). (Scalar std::exp: GCC 12 warns falsely inside Eigen's AVX-512 exp.)
Eigen::VectorXd normalised_weights(const Eigen::VectorXd& log_w) {
  const double top = log_w.maxCoeff();
  Eigen::VectorXd w(log_w.size());
  for (Eigen::Index i = 0; i < w.size(); ++i) w(i) = std::exp(log_w(i) - top);
  return w / w.sum();
}

// Systematic resampling with one uniform from (seed, temperature): indices in increasing order.
std::vector<Eigen::Index> systematic_resample(const Eigen::VectorXd& log_w, std::uint64_t seed, int temperature) {
  const Eigen::Index n = log_w.size();
  const Eigen::VectorXd w = normalised_weights(log_w);
  CounterRng rng(seed, Stream::sampling, global_rng_index, static_cast<std::uint64_t>(temperature));
  const double u0 = rng.uniform();
  std::vector<Eigen::Index> index(static_cast<std::size_t>(n));
  double cumulative = w(0);
  Eigen::Index j = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double point = (static_cast<double>(i) + u0) / static_cast<double>(n);
    while (point > cumulative && j + 1 < n) cumulative += w(++j);
    index[static_cast<std::size_t>(i)] = j;
  }
  return index;
}

}  // namespace

RawRun run_smc(const SamplingTarget& target, const SamplerSettings& st) {
  const Eigen::Index d = target.dim, n = st.particles;
  const Blocks blocks(n);

  Eigen::MatrixXd u0 = target.sample_prior(st.seed, n);
  if (u0.rows() != d || u0.cols() != n)
    throw std::runtime_error(fmt::format("smc: sample_prior returned {} × {} for {} particles (expected {} × {})",
                                         u0.rows(), u0.cols(), n, d, n));
  if (!u0.allFinite()) throw std::runtime_error("smc: sample_prior returned a non-finite point");
  States s{u0, Eigen::MatrixXd(d, n), Eigen::MatrixXd(d, n), Eigen::RowVectorXd(n), Eigen::RowVectorXd(n)};
  for_each_block(blocks, [&](Eigen::Index b, Eigen::Index len) {
    s.set_columns(b, evaluate(target, u0.middleCols(b, len), true));
  });
  // A particle where the prior or the likelihood is not finite gets weight zero (its log
  // likelihood becomes −∞); it disappears at the first resampling.
  for (Eigen::Index i = 0; i < n; ++i) {
    if (!std::isfinite(s.log_lik(i)) || !std::isfinite(s.log_prior(i)) || !s.grad_prior.col(i).allFinite() ||
        !s.grad_lik.col(i).allFinite())
      s.log_lik(i) = -std::numeric_limits<double>::infinity();
  }

  Eigen::VectorXd log_w = Eigen::VectorXd::Zero(n);
  double beta = 0;
  // MALA's optimal scaling on a Gaussian in preconditioned units is about 1.65·d^(−1/6).
  double eps = st.step_size > 0 ? st.step_size : 1.65 * std::pow(static_cast<double>(d), -1.0 / 6.0);
  Eigen::VectorXd m = Eigen::VectorXd::Ones(d);
  std::vector<double> accept(static_cast<std::size_t>(n), 0.0), accept_final(static_cast<std::size_t>(n), 0.0);
  RawRun out;
  out.temperatures.push_back(0.0);
  const double threshold = st.ess_threshold;

  ProgressReporter progress("tempering (smc)", "‰ of β", 1000, st.progress);
  for (int k = 1; beta < 1; ++k) {
    if (k > max_temperatures)
      throw std::runtime_error(fmt::format(
          "smc: β reached only {:.3g} after {} temperatures; the log-likelihood varies too much over the "
          "particles (try more particles or a higher ess_threshold)", beta, max_temperatures));
    // Next temperature: the largest β' whose reweighted ESS stays ≥ threshold·N, by bisection. The
    // returned β' has ESS < threshold·N (the bisection keeps that side), so the step resamples.
    double next = 1.0;
    if (relative_ess(log_w, s.log_lik, 1.0 - beta) < threshold) {
      double lo = beta, hi = 1.0;
      for (int i = 0; i < 100; ++i) {
        const double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        (relative_ess(log_w, s.log_lik, mid - beta) >= threshold ? lo : hi) = mid;
      }
      next = hi;
    }
    const double delta = next - beta;
    for (Eigen::Index i = 0; i < n; ++i) log_w(i) += delta * s.log_lik(i);
    if (!std::isfinite(log_w.maxCoeff()))
      throw std::runtime_error(fmt::format(
          "smc: every particle has zero weight at β = {:.3g} (the log-likelihood is −∞ or NaN at all of "
          "them)", next));
    beta = next;
    out.temperatures.push_back(beta);

    // Resample below the threshold, and always at β = 1 so the result is equally weighted.
    const double ess = relative_ess(log_w, s.log_lik, 0.0);
    if (ess < threshold || beta == 1.0) {
      s = s.gather(systematic_resample(log_w, st.seed, k));
      log_w.setZero();
    }

    // Preconditioner: the particles' (weighted) spread at this temperature.
    {
      const Eigen::VectorXd w = normalised_weights(log_w);
      const Eigen::VectorXd mean = s.u * w;
      const Eigen::VectorXd var = (s.u.colwise() - mean).array().square().matrix() * w;
      for (Eigen::Index j = 0; j < d; ++j)
        if (std::isfinite(var(j)) && var(j) > 0) m(j) = var(j);
    }
    const Preconditioner pc(m);

    // MALA moves targeting p_β; the step follows the acceptance (log ε += acceptance − target).
    for (int move = 0; move < st.smc_moves; ++move) {
      LangevinStep ls{&target, &pc};
      ls.eps = eps;
      ls.beta = beta;
      ls.seed = st.seed;
      ls.attempt = static_cast<std::uint64_t>(k) * static_cast<std::uint64_t>(st.smc_moves) +
                   static_cast<std::uint64_t>(move);
      ls.metropolis = true;
      for_each_block(blocks, [&](Eigen::Index b, Eigen::Index len) {
        langevin_block(ls, s, b, len, accept.data(), nullptr);
      });
      const double a = std::accumulate(accept.begin(), accept.end(), 0.0) / static_cast<double>(n);
      if (st.step_size <= 0) eps *= std::exp(a - st.target_acceptance);
      if (beta == 1.0)
        for (std::size_t i = 0; i < accept.size(); ++i) accept_final[i] += accept[i] / st.smc_moves;
    }
    progress.update(static_cast<std::uint64_t>(std::floor(1000 * beta)),
                    fmt::format("β {:.4g}, {} temperatures, ε {:.3g}", beta, k, eps));
  }
  progress.finish(fmt::format("{} temperatures", out.temperatures.size() - 1));

  // Particles outside the trusted region are removed; the rest form `chains` groups of equal size.
  std::vector<Eigen::Index> keep;
  keep.reserve(static_cast<std::size_t>(n));
  if (target.in_trusted_region) {
    std::vector<char> inside(static_cast<std::size_t>(n), 1);
    for_each_block(blocks, [&](Eigen::Index b, Eigen::Index len) {
      const std::vector<bool> in = target.in_trusted_region(s.u.middleCols(b, len));
      if (static_cast<Eigen::Index>(in.size()) != len)
        throw std::runtime_error(fmt::format("sampling target: in_trusted_region returned {} flags for {} points",
                                             in.size(), len));
      for (Eigen::Index j = 0; j < len; ++j) inside[static_cast<std::size_t>(b + j)] = in[static_cast<std::size_t>(j)];
    });
    for (Eigen::Index i = 0; i < n; ++i)
      if (inside[static_cast<std::size_t>(i)]) keep.push_back(i);
  } else {
    keep.resize(static_cast<std::size_t>(n));
    std::iota(keep.begin(), keep.end(), Eigen::Index{0});
  }
  out.removed_particles = static_cast<int>(n - static_cast<Eigen::Index>(keep.size()));
  if (out.removed_particles > 0)
    out.warnings.push_back(fmt::format(
        "smc: {} of {} particles ({:.1f}%) lie outside the region the model was trained on and were removed",
        out.removed_particles, n, 100.0 * out.removed_particles / static_cast<double>(n)));

  const Eigen::Index per = static_cast<Eigen::Index>(keep.size()) / st.chains;
  const int groups = per > 0 ? st.chains : 0;  // fewer particles kept than groups: none returned
  out.chains.assign(static_cast<std::size_t>(groups), Eigen::MatrixXd(per, d));
  out.log_density.assign(static_cast<std::size_t>(groups), Eigen::VectorXd(per));
  out.acceptance_rate.assign(static_cast<std::size_t>(groups), 0.0);
  out.step_size.assign(static_cast<std::size_t>(groups), eps);
  out.diverged_at.assign(static_cast<std::size_t>(groups), -1);
  for (int g = 0; g < groups; ++g) {
    const auto gi = static_cast<std::size_t>(g);
    for (Eigen::Index r = 0; r < per; ++r) {
      const Eigen::Index i = keep[static_cast<std::size_t>(g * per + r)];
      out.chains[gi].row(r) = s.u.col(i).transpose();
      out.log_density[gi](r) = s.log_prior(i) + s.log_lik(i);
      out.acceptance_rate[gi] += accept_final[static_cast<std::size_t>(i)] / static_cast<double>(per);
    }
  }
  out.preconditioner = m;
  const double mean_accept = std::accumulate(accept_final.begin(), accept_final.end(), 0.0) / static_cast<double>(n);
  if (st.smc_moves > 0 && mean_accept < 0.1)
    out.warnings.push_back(fmt::format(
        "smc: the MALA moves at β = 1 accepted only {:.1f}% of proposals: many particles are copies of "
        "each other; use more particles or smc_moves", 100 * mean_accept));
  return out;
}

}  // namespace fsbi::sampling
