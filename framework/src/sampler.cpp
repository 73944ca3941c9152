// run_sampler: checks the request, runs ULA/MALA (sampling/mcmc.cpp) or SMC (sampling/smc.cpp),
// drops chains that left the trusted region or diverged, and adds R-hat, ESS and warnings.
#include "fsbi/sampler.hpp"
#include "sampling/internal.hpp"

#include <fmt/format.h>

#include <oneapi/tbb/global_control.h>

#include <climits>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

namespace fsbi {

std::string to_string(SamplerMethod m) {
  switch (m) {
    case SamplerMethod::ula: return "ula";
    case SamplerMethod::mala: return "mala";
    case SamplerMethod::smc: return "smc";
  }
  return "?";
}

SamplerMethod parse_sampler_method(const std::string& s) {
  if (s == "ula") return SamplerMethod::ula;
  if (s == "mala") return SamplerMethod::mala;
  if (s == "smc") return SamplerMethod::smc;
  throw std::invalid_argument(fmt::format("unknown sampler '{}': expected ula, mala or smc", s));
}

namespace {

std::string upper(SamplerMethod m) {
  std::string s = to_string(m);
  for (char& ch : s) ch = static_cast<char>(ch - 'a' + 'A');
  return s;
}

}  // namespace

std::string sampler_settings_problem(const SamplerSettings& st) {
  if (st.chains < 1) return fmt::format("chains is {}; it must be at least 1", st.chains);
  if (st.warmup < 0) return fmt::format("warmup is {}; it must be 0 or more", st.warmup);
  if (st.thin < 1) return fmt::format("thin is {}; it must be at least 1", st.thin);
  if (!(st.step_size >= 0) || !std::isfinite(st.step_size))
    return fmt::format("step_size is {}; use 0 (automatic) or a positive step", st.step_size);
  if (!(st.target_acceptance > 0 && st.target_acceptance < 1))
    return fmt::format("target_acceptance is {}; it must lie in (0, 1)", st.target_acceptance);
  if (st.method == SamplerMethod::smc) {
    if (!(st.ess_threshold > 0 && st.ess_threshold < 1))
      return fmt::format("ess_threshold is {}; it must lie in (0, 1)", st.ess_threshold);
    if (st.smc_moves < 0) return fmt::format("smc_moves is {}; it must be 0 or more", st.smc_moves);
  }
  return {};
}

namespace {

void validate(const SamplingTarget& t, const Eigen::MatrixXd& initial, const SamplerSettings& st) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("sampler: " + msg); };
  const std::string name = upper(st.method);
  if (t.dim < 1) fail(fmt::format("the target has dimension {}; it needs at least one parameter", t.dim));
  if (!t.grad_log_prior || !t.grad_log_likelihood)
    fail("the target lacks grad_log_prior or grad_log_likelihood; every sampler needs the score");
  if (st.method != SamplerMethod::ula) {
    if (!t.log_likelihood)
      fail(fmt::format("{} needs an energy model: the target has no log_likelihood (a vector, score-only "
                       "model gives only the score). Use the ula sampler, or train with --model-kind energy",
                       name));
    if (!t.log_prior) fail(fmt::format("{} needs the target's log_prior, which is empty", name));
  }
  if (const std::string problem = sampler_settings_problem(st); !problem.empty()) fail(problem);
  if (st.draws < 1) fail(fmt::format("draws is {}; it must be at least 1", st.draws));
  if (st.preconditioner.size() != 0) {
    if (st.preconditioner.size() != t.dim)
      fail(fmt::format("the preconditioner has {} entries for {} parameters", st.preconditioner.size(), t.dim));
    if (!st.preconditioner.allFinite() || !(st.preconditioner.minCoeff() > 0))
      fail("the preconditioner's entries must be positive and finite");
  }
  if (st.method == SamplerMethod::smc) {
    if (!t.sample_prior) fail("SMC starts from the prior: the target needs sample_prior");
    if (st.particles < st.chains)
      fail(fmt::format("particles is {}, fewer than the {} particle groups (chains)", st.particles, st.chains));
    return;
  }
  if (static_cast<long long>(st.draws) * st.thin + st.warmup > INT_MAX / 2)
    fail(fmt::format("warmup + draws·thin = {} steps is too many",
                     static_cast<long long>(st.draws) * st.thin + st.warmup));
  if (initial.rows() != t.dim || initial.cols() != st.chains)
    fail(fmt::format("the starting points are {} × {}; {} needs dim × chains = {} × {}", initial.rows(),
                     initial.cols(), name, t.dim, st.chains));
  if (!initial.allFinite()) fail("a starting point is not finite");
}

std::string list_indices(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < 20; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  if (v.size() > 20) s += fmt::format(", … ({} more)", v.size() - 20);
  return s;
}

}  // namespace

SampleResult run_sampler(const SamplingTarget& target, const Eigen::MatrixXd& initial,
                         const SamplerSettings& st) {
  validate(target, initial, st);
  std::optional<tbb::global_control> limit;
  if (st.threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(st.threads));

  const bool smc = st.method == SamplerMethod::smc;
  sampling::RawRun raw = smc ? sampling::run_smc(target, st) : sampling::run_langevin_chains(target, initial, st);
  const auto n = static_cast<Eigen::Index>(raw.chains.size());

  // MCMC: a chain with any kept draw outside the trusted region is dropped whole.
  std::vector<char> outside(static_cast<std::size_t>(n), 0);
  if (!smc && target.in_trusted_region) {
    tbb::parallel_for(Eigen::Index{0}, n, [&](Eigen::Index c) {
      const Eigen::MatrixXd draws = raw.chains[static_cast<std::size_t>(c)].transpose();
      const std::vector<bool> in = target.in_trusted_region(draws);
      if (static_cast<Eigen::Index>(in.size()) != draws.cols())
        throw std::runtime_error(fmt::format("sampling target: in_trusted_region returned {} flags for {} points",
                                             in.size(), draws.cols()));
      for (bool b : in)
        if (!b) outside[static_cast<std::size_t>(c)] = 1;
    });
  }

  SampleResult r;
  r.warnings = std::move(raw.warnings);
  r.preconditioner = std::move(raw.preconditioner);
  r.temperatures = std::move(raw.temperatures);
  r.removed_particles = raw.removed_particles;
  std::vector<int> left, diverged;
  int first_divergence = INT_MAX;
  for (Eigen::Index c = 0; c < n; ++c) {
    const auto k = static_cast<std::size_t>(c);
    const bool div = raw.diverged_at[k] >= 0;
    if (outside[k] || div) {
      r.escaped.push_back(static_cast<int>(c));
      (div ? diverged : left).push_back(static_cast<int>(c));
      if (div) first_divergence = std::min(first_divergence, raw.diverged_at[k] - st.warmup);
      continue;
    }
    r.chains.push_back(std::move(raw.chains[k]));
    r.log_density.push_back(std::move(raw.log_density[k]));
    r.acceptance_rate.push_back(raw.acceptance_rate[k]);
    r.step_size.push_back(raw.step_size[k]);
  }
  if (!left.empty())
    r.warnings.push_back(fmt::format(
        "{} of {} chains left the region the model was trained on and were dropped (chains {}); their "
        "draws are not returned. Start the chains nearer the observations' training pairs",
        left.size(), n, list_indices(left)));
  if (!diverged.empty())
    r.warnings.push_back(fmt::format(
        "{} of {} chains diverged (a non-finite point or score, first {} steps after warm-up) and were "
        "dropped (chains {}); use a smaller step_size", diverged.size(), n, first_divergence, list_indices(diverged)));

  const Eigen::Index d = target.dim;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (r.chains.empty() || r.chains.front().rows() < 4) {
    r.rhat = r.ess = Eigen::VectorXd::Constant(d, nan);
    r.warnings.push_back(r.chains.empty() ? std::string("no chains are left: nothing to diagnose")
                                          : std::string("fewer than 4 draws per chain: R-hat and ESS are not computed"));
    return r;
  }
  const double chains = static_cast<double>(r.chains.size());
  const double draws = static_cast<double>(r.chains.front().rows());
  if (!smc && chains >= many_chains_min && draws < many_chains_max_draws) {
    // Many short chains (the default): per-chain R-hat and ESS need ~100 effective draws per
    // chain and read high for any short chain. The chains are independent, so instead
    //   ESS_j = C · var(all draws) / var(chain means)   (capped at C · draws), and
    //   drift z_j = mean_c(d_c) / (sd_c(d_c)/√C), d_c = second-half mean − first-half mean,
    // which is N(0, 1) when warm-up has reached the stationary distribution (docs/sampling.md).
    r.rhat = split_rhat(r.chains);  // informational: between-mode spread shows up here too
    const Eigen::Index C = static_cast<Eigen::Index>(r.chains.size()), N = r.chains.front().rows(), h = N / 2;
    r.ess.resize(d);
    for (Eigen::Index j = 0; j < d; ++j) {
      Eigen::VectorXd means(C), diff(C);
      double sum = 0, sum2 = 0;
      for (Eigen::Index c = 0; c < C; ++c) {
        const auto col = r.chains[static_cast<std::size_t>(c)].col(j);
        means[c] = col.mean();
        diff[c] = col.tail(h).mean() - col.head(h).mean();
        sum += col.sum();
        sum2 += col.squaredNorm();
      }
      const double n_all = static_cast<double>(C * N), mu = sum / n_all;
      const double var_all = std::max(0.0, sum2 / n_all - mu * mu);
      const double var_means = (means.array() - means.mean()).square().sum() / static_cast<double>(C - 1);
      r.ess(j) = var_means > 0 ? std::min(n_all, static_cast<double>(C) * var_all / var_means) : n_all;
      const double dsd = std::sqrt((diff.array() - diff.mean()).square().sum() / static_cast<double>(C - 1));
      const double z = dsd > 0 ? diff.mean() / (dsd / std::sqrt(static_cast<double>(C))) : 0.0;
      if (std::abs(z) > drift_warning_z)
        r.warnings.push_back(fmt::format(
            "parameter {}: the chains still drift after warm-up (second-half minus first-half mean across "
            "{} chains: z = {:.1f}); use a longer --warmup",
            j, C, z));
      if (!(r.ess(j) >= ess_warning_smc))
        r.warnings.push_back(fmt::format("bulk ESS {:.0f} for parameter {} < {:.0f}: use more chains or --thin",
                                         r.ess(j), j, ess_warning_smc));
    }
    return r;
  }
  r.rhat = split_rhat(r.chains);
  r.ess = effective_sample_size(r.chains);
  const double ess_min = smc ? ess_warning_smc : ess_warning_per_chain * chains;
  const char* what = smc ? " across SMC particle groups" : "";
  for (Eigen::Index j = 0; j < d; ++j) {
    if (!(r.rhat(j) <= rhat_warning_threshold)) {
      // Finite chains inflate R-hat even when they agree: R-hat − 1 ≈ (τ − 1)/draws, with τ the
      // draws per effective draw. Say so when that alone reaches half the threshold's margin.
      const double tau = chains * draws / r.ess(j), inflation = (tau - 1) / draws;
      std::string hint;
      if (!smc && inflation > 0.5 * (rhat_warning_threshold - 1))
        hint = fmt::format(" (with {:.3g} draws per effective draw and {} draws per chain, even agreeing chains "
                           "read about {:.3g})", tau, draws, 1 + inflation);
      r.warnings.push_back(fmt::format(
          "R-hat {:.3g} for parameter {} > {}{}: {}{}", r.rhat(j), j, rhat_warning_threshold, what,
          smc ? "the particles descend from few ancestors; use more particles or smc_moves"
              : "the chains disagree or are too short; run longer (warm-up and draws) and look for separated modes",
          hint));
    }
    if (!(r.ess(j) >= ess_min))
      r.warnings.push_back(
          smc ? fmt::format("bulk ESS {:.0f} for parameter {} < {:.0f}: the Monte-Carlo error exceeds 5% of a "
                            "posterior sd; use more particles or smc_moves", r.ess(j), j, ess_min)
              : fmt::format("bulk ESS {:.0f} for parameter {} < {:.0f} ({} per chain): too few effective draws per "
                            "chain for R-hat and ESS to be reliable; run longer chains",
                            r.ess(j), j, ess_min, ess_warning_per_chain));
  }
  return r;
}

}  // namespace fsbi
