// Many-chain Langevin MCMC: ULA (score only) and MALA (Metropolis-adjusted), with a diagonal
// preconditioner adapted in warm-up windows from the spread of all chains, and an automatic step:
// dual averaging to the target acceptance (MALA) or the curvature rule (ULA). docs/sampling.md.
//
// All chains advance in lock step: each step is one parallel sweep over the fixed chain blocks,
// followed by a serial reduction (acceptance, curvature, variance) in chain order, so adaptation
// sees the same numbers for any thread count.
#include "fsbi/progress.hpp"
#include "sampling/internal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace fsbi::sampling {
namespace {

// Step-size adaptation by dual averaging (Nesterov 2009; Hoffman & Gelman 2014, as in Stan).
struct DualAveraging {
  static constexpr double gamma = 0.05, t0 = 10, kappa = 0.75;
  double mu = 0, s_bar = 0, x_bar = 0;
  int counter = 0;

  void restart(double eps) {
    mu = std::log(10 * eps);
    s_bar = x_bar = 0;
    counter = 0;
  }
  // Feeds one acceptance statistic; returns the next step size.
  double learn(double stat, double target) {
    ++counter;
    const double eta = 1.0 / (counter + t0);
    s_bar = (1 - eta) * s_bar + eta * (target - std::min(1.0, stat));
    const double x = mu - s_bar * std::sqrt(static_cast<double>(counter)) / gamma;
    const double w = std::pow(static_cast<double>(counter), -kappa);
    x_bar = (1 - w) * x_bar + w * x;
    return std::exp(x);
  }
  double averaged(double fallback) const { return counter > 0 ? std::exp(x_bar) : fallback; }
};

// Stan's windowed adaptation: an initial fast buffer, slow windows doubling in length in which
// the preconditioner is estimated (updated at each window's end), and a terminal buffer where
// only the step adapts to the final preconditioner. Returns [begin, end) of the slow windows.
std::vector<std::pair<int, int>> adaptation_windows(int warmup) {
  std::vector<std::pair<int, int>> windows;
  if (warmup < 20) return windows;
  int init = 75, term = 50, base = 25;
  if (init + base + term > warmup) {
    init = static_cast<int>(0.15 * warmup);
    term = static_cast<int>(0.1 * warmup);
    base = warmup - init - term;
  }
  const int slow_end = warmup - term;
  for (int start = init, size = base; start < slow_end; size *= 2) {
    int end = start + size;
    if (end + 2 * size > slow_end) end = slow_end;  // the next, doubled window would not fit
    windows.emplace_back(start, end);
    start = end;
  }
  return windows;
}

// Per-chain running means and sums of squares over a window (Welford, all chains at once), giving
// the variance across all chains and steps of the window. (Not the pooled within-chain variance
// Stan uses with one chain: with many chains the total converges faster for a connected
// posterior, and a slowly mixing sampler — ULA — would underestimate its slow directions.)
struct WindowVariance {
  Eigen::MatrixXd mean, m2;  // d × chains
  double k = 0;              // steps so far
  WindowVariance(Eigen::Index d, Eigen::Index chains)
      : mean(Eigen::MatrixXd::Zero(d, chains)), m2(Eigen::MatrixXd::Zero(d, chains)) {}
  void add(const Eigen::MatrixXd& u) {
    k += 1;
    const Eigen::MatrixXd delta = u - mean;
    mean += delta / k;
    m2 += delta.cwiseProduct(u - mean);
  }
  Eigen::VectorXd total() const {
    const Eigen::VectorXd grand = mean.rowwise().mean();
    const Eigen::VectorXd between = (mean.colwise() - grand).array().square().rowwise().sum().matrix();
    return (m2.rowwise().sum() + k * between) / (static_cast<double>(m2.cols()) * k - 1);
  }
};

// Starting preconditioner: the chains' initial spread where it is positive (nearest-neighbour
// starts already sketch the posterior's scale), the mean positive spread elsewhere, else 1.
Eigen::VectorXd initial_preconditioner(const Eigen::MatrixXd& initial) {
  const Eigen::Index d = initial.rows(), n = initial.cols();
  Eigen::VectorXd v = Eigen::VectorXd::Constant(d, std::numeric_limits<double>::quiet_NaN());
  if (n >= 2) {
    const Eigen::VectorXd mean = initial.rowwise().mean();
    v = (initial.colwise() - mean).array().square().rowwise().sum().matrix() / static_cast<double>(n - 1);
  }
  double sum = 0;
  int positive = 0;
  for (Eigen::Index j = 0; j < d; ++j)
    if (std::isfinite(v(j)) && v(j) > 0) sum += v(j), ++positive;
  const double fill = positive ? sum / positive : 1.0;
  for (Eigen::Index j = 0; j < d; ++j)
    if (!(std::isfinite(v(j)) && v(j) > 0)) v(j) = fill;
  return v;
}

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

}  // namespace

RawRun run_langevin_chains(const SamplingTarget& target, const Eigen::MatrixXd& initial,
                           const SamplerSettings& st) {
  const bool mala = st.method == SamplerMethod::mala;
  const Eigen::Index d = target.dim, n = st.chains;
  const Blocks blocks(n);
  // ULA records log densities for its draws when the model has them (energy models).
  const bool ula_logs = !mala && target.log_prior && target.log_likelihood;
  const std::string name = to_string(st.method);

  // Starting states.
  States s{initial, Eigen::MatrixXd(d, n), Eigen::MatrixXd(d, n), Eigen::RowVectorXd(n), Eigen::RowVectorXd(n)};
  for_each_block(blocks, [&](Eigen::Index b, Eigen::Index len) {
    s.set_columns(b, evaluate(target, initial.middleCols(b, len), mala));
  });
  for (Eigen::Index c = 0; c < n; ++c) {
    if (!s.grad_prior.col(c).allFinite() || !s.grad_lik.col(c).allFinite())
      throw std::invalid_argument(fmt::format(
          "{}: the score at the starting point of chain {} is not finite; start the chains inside the "
          "prior's support (e.g. at training θ)", name, c));
    if (mala && !std::isfinite(tempered(s.log_prior(c), s.log_lik(c), 1.0)))
      throw std::invalid_argument(fmt::format(
          "{}: the log density at the starting point of chain {} is {} (log prior {}, log likelihood {}); "
          "start the chains where the posterior is positive", name, c,
          tempered(s.log_prior(c), s.log_lik(c), 1.0), s.log_prior(c), s.log_lik(c)));
  }

  const bool fixed_metric = st.preconditioner.size() > 0;
  const bool fixed_step = st.step_size > 0;
  Preconditioner pc(fixed_metric ? st.preconditioner : initial_preconditioner(initial));
  const auto windows = fixed_metric ? std::vector<std::pair<int, int>>{} : adaptation_windows(st.warmup);
  const int last_window_end = windows.empty() ? 0 : windows.back().second;

  std::vector<double> accept(static_cast<std::size_t>(n)), kappa(static_cast<std::size_t>(n));
  std::uint64_t probes = 0;
  auto sweep = [&](const LangevinStep& ls) {
    for_each_block(blocks, [&](Eigen::Index b, Eigen::Index len) {
      langevin_block(ls, s, b, len, accept.data(), kappa.data());
    });
  };
  auto make_step = [&](double eps, std::uint64_t attempt) {
    LangevinStep ls{&target, &pc};
    ls.eps = eps;
    ls.seed = st.seed;
    ls.attempt = attempt;
    ls.metropolis = mala;
    ls.with_log = false;
    return ls;
  };

  // MALA: a step whose mean acceptance probability over all chains is near the target, from trial
  // proposals that never move a chain: double or halve until the acceptance crosses the target
  // (Stan's heuristic), then 6 bisections in log ε (to within a factor 2^(1/64)).
  auto reasonable_mala_step = [&](double eps) {
    auto probe = [&](double e) {
      LangevinStep ls = make_step(e, probe_attempt_base + probes++);
      ls.move = false;
      sweep(ls);
      return mean_of(accept);
    };
    const bool up = probe(eps) > st.target_acceptance;
    double lo = eps, hi = eps;  // acceptance(lo) > target ≥ acceptance(hi), once bracketed
    bool bracketed = false;
    for (int i = 0; i < 60 && !bracketed; ++i) {
      const double next = up ? 2 * eps : 0.5 * eps;
      const bool above = probe(next) > st.target_acceptance;
      if (up && !above) lo = eps, hi = next, bracketed = true;
      if (!up && above) lo = next, hi = eps, bracketed = true;
      eps = next;
    }
    if (!bracketed) return eps;
    for (int i = 0; i < 6; ++i) {
      const double mid = std::sqrt(lo * hi);
      (probe(mid) > st.target_acceptance ? lo : hi) = mid;
    }
    return std::sqrt(lo * hi);
  };

  // ULA: λ̂ estimates the largest local curvature of log p in preconditioned units (the 90 %
  // quantile of κ over chains); ε = ula_default_step / √λ̂ keeps ε²·κ ≈ ula_default_step².
  double lambda = 1.0;
  auto probe_curvature = [&]() {
    for (int i = 0; i < 3; ++i) {
      LangevinStep ls = make_step(ula_default_step / std::sqrt(lambda), probe_attempt_base + probes++);
      ls.move = false;
      sweep(ls);
      const double q = quantile_finite(kappa, 0.9);
      if (std::isfinite(q) && q > 0) lambda = q;
    }
  };

  DualAveraging da;
  // MALA's optimal scaling on a Gaussian in preconditioned units is about 1.65·d^(−1/6).
  double eps = fixed_step ? st.step_size : 1.65 * std::pow(static_cast<double>(d), -1.0 / 6.0);
  double eps_bracketed = eps;
  auto restart_step = [&]() {
    if (fixed_step) return;
    if (mala) {
      eps = eps_bracketed = reasonable_mala_step(eps);
      da.restart(eps);
    } else {
      probe_curvature();
      eps = ula_default_step / std::sqrt(lambda);
    }
  };
  restart_step();

  const int total = st.warmup + st.draws * st.thin;
  ProgressReporter progress(fmt::format("sampling ({})", name), "step", static_cast<std::uint64_t>(total), st.progress);

  RawRun out;
  out.chains.assign(static_cast<std::size_t>(n), Eigen::MatrixXd(st.draws, d));
  out.log_density.assign(static_cast<std::size_t>(n), Eigen::VectorXd(st.draws));
  out.diverged_at.assign(static_cast<std::size_t>(n), -1);
  std::vector<double> accept_sum(static_cast<std::size_t>(n), 0.0);
  std::vector<double> final_kappa;  // ULA: κ over the terminal buffer, for the final step
  WindowVariance window_var(d, n);
  std::size_t window = 0;

  for (int t = 0; t < total; ++t) {
    const bool warm = t < st.warmup;
    LangevinStep ls = make_step(eps, static_cast<std::uint64_t>(t));
    if (!mala && warm && !fixed_step) ls.guard = 1.0;  // warm-up only: refuse wildly nonlinear moves
    const bool keep = !warm && (t - st.warmup + 1) % st.thin == 0;
    ls.with_log = ula_logs && keep;
    sweep(ls);

    if (warm) {
      if (!fixed_step) {
        if (mala) {
          eps = da.learn(mean_of(accept), st.target_acceptance);
        } else {
          const double q = quantile_finite(kappa, 0.9);
          if (std::isfinite(q) && q > 0)
            lambda = std::exp(std::max(std::log(q), 0.9 * std::log(lambda) + 0.1 * std::log(q)));
          const auto bad = std::count_if(kappa.begin(), kappa.end(), [](double k) { return std::isnan(k); });
          if (10 * bad > n) lambda *= 4;  // many non-finite proposals: the step is far too large
          eps = ula_default_step / std::sqrt(lambda);
          if (t >= last_window_end) final_kappa.insert(final_kappa.end(), kappa.begin(), kappa.end());
        }
      }
      if (window < windows.size() && t >= windows[window].first) {
        window_var.add(s.u);
        if (t + 1 == windows[window].second) {
          const Eigen::VectorXd v = window_var.total();
          Eigen::VectorXd mnew = pc.m;
          for (Eigen::Index j = 0; j < d; ++j)
            if (std::isfinite(v(j)) && v(j) > 0) mnew(j) = v(j);
          pc = Preconditioner(mnew);
          window_var = WindowVariance(d, n);
          ++window;
          restart_step();
        }
      }
      if (t + 1 == st.warmup && !fixed_step) {
        if (mala) {
          // Dual averaging starts by exploring steps up to 10× larger; after fewer than 20 updates
          // (a very short warm-up) its average is not yet a step, so the bracketed one is used.
          eps = da.counter >= 20 ? da.averaged(eps) : eps_bracketed;
        } else {
          const double q = quantile_finite(final_kappa, 0.9);
          if (std::isfinite(q) && q > 0) lambda = q;
          eps = ula_default_step / std::sqrt(lambda);
        }
      }
    } else {
      for (Eigen::Index c = 0; c < n; ++c) {
        const auto k = static_cast<std::size_t>(c);
        accept_sum[k] += accept[k];
        // ULA has no rejection: a refused move means a non-finite proposal.
        if (!mala && accept[k] == 0 && out.diverged_at[k] < 0) out.diverged_at[k] = t;
      }
      if (keep) {
        const Eigen::Index r = (t - st.warmup) / st.thin;
        for (Eigen::Index c = 0; c < n; ++c) {
          const auto k = static_cast<std::size_t>(c);
          out.chains[k].row(r) = s.u.col(c).transpose();
          out.log_density[k](r) = mala || ula_logs ? s.log_prior(c) + s.log_lik(c)
                                                   : std::numeric_limits<double>::quiet_NaN();
        }
      }
    }
    if (t % 16 == 15 || t + 1 == total)
      progress.update(static_cast<std::uint64_t>(t + 1),
                      fmt::format("{} ε {:.3g}{}", warm ? "warm-up" : "sampling", eps,
                                  mala ? fmt::format(" acceptance {:.2f}", mean_of(accept)) : std::string()));
  }

  const double steps = static_cast<double>(st.draws) * st.thin;
  out.acceptance_rate.resize(static_cast<std::size_t>(n));
  for (std::size_t k = 0; k < accept_sum.size(); ++k) out.acceptance_rate[k] = accept_sum[k] / steps;
  out.step_size.assign(static_cast<std::size_t>(n), eps);
  out.preconditioner = pc.m;
  const double mean_accept = mean_of(out.acceptance_rate);
  progress.finish(fmt::format("ε {:.3g} (preconditioned){}", eps,
                              mala ? fmt::format(", mean acceptance {:.2f}", mean_accept) : std::string()));
  if (mala && mean_accept < 0.1)
    out.warnings.push_back(fmt::format(
        "MALA accepted only {:.1f}% of proposals after warm-up: the chains barely move; use more "
        "warm-up{}", 100 * mean_accept, fixed_step ? " or a smaller step_size" : ""));
  return out;
}

}  // namespace fsbi::sampling
