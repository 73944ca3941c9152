// Local Fisher score matching, maximum likelihood and Fisher information (fsbi/local_fsm.hpp,
// docs/mle.md).
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/local_fsm.hpp"

#include "fsbi/random.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/simulation.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>

namespace fsbi {

namespace {

std::string format_vector(const Eigen::VectorXd& v, int max_shown = 6) {
  std::string s = "(";
  const Eigen::Index shown = std::min<Eigen::Index>(v.size(), max_shown);
  for (Eigen::Index i = 0; i < shown; ++i) s += fmt::format("{}{:.6g}", i ? ", " : "", v[i]);
  if (shown < v.size()) s += fmt::format(", … {} values", v.size());
  return s + ")";
}

// Seeds for the simulations that are not local fits (fresh data at a point, replicated
// observation sets of the pilot check): a fixed odd multiplier keeps them apart from the run seed.
std::uint64_t derived_seed(std::uint64_t seed, std::uint64_t purpose) {
  return seed + 0x9E3779B97F4A7C15ULL * (purpose + 1);
}

// Proposal-index ranges: each phase of an MLE run owns 2^40 proposal indices.
constexpr std::uint64_t kPhaseStride = std::uint64_t{1} << 40;

Eigen::VectorXd broadcast_sigma(const Eigen::VectorXd& sigma, int d, const char* what) {
  if (sigma.size() != 1 && sigma.size() != d)
    throw LocalFsmError(fmt::format("{} has {} values; give one value or one per parameter ({})", what,
                                    sigma.size(), d));
  for (Eigen::Index i = 0; i < sigma.size(); ++i)
    if (!(std::isfinite(sigma[i]) && sigma[i] > 0))
      throw LocalFsmError(fmt::format("{} = {} must be positive and finite", what, sigma[i]));
  return sigma.size() == 1 ? Eigen::VectorXd::Constant(d, sigma[0]) : sigma;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

SimulatedRows simulate_at(const Simulator& simulator, const Eigen::MatrixXd& theta, std::uint64_t seed,
                          std::uint64_t first_index, int threads) {
  const int d = simulator.parameter_dim(), k = simulator.data_dim();
  if (theta.rows() != d)
    throw LocalFsmError(fmt::format("theta has {} values per column, simulator '{}' has {} parameters",
                                    theta.rows(), simulator.name(), d));
  const Eigen::Index n = theta.cols();
  SimulatedRows out;
  out.x.resize(k, n);
  out.ok.assign(static_cast<std::size_t>(n), 0);
  if (n == 0) return out;
  constexpr Eigen::Index block = 64;
  const Eigen::Index blocks = (n + block - 1) / block;
  std::vector<std::string> block_error(static_cast<std::size_t>(blocks));
  tbb::enumerable_thread_specific<std::unique_ptr<SimulatorInstance>> instances;
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  arena.execute([&] {
    tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, blocks), [&](const tbb::blocked_range<Eigen::Index>& r) {
      auto& inst = instances.local();
      if (!inst) inst = simulator.create_instance();
      for (Eigen::Index b = r.begin(); b != r.end(); ++b) {
        const Eigen::Index c0 = b * block, nc = std::min(block, n - c0);
        std::vector<std::uint64_t> idx(static_cast<std::size_t>(nc));
        std::vector<std::uint32_t> att(static_cast<std::size_t>(nc), 0);
        for (Eigen::Index i = 0; i < nc; ++i) idx[static_cast<std::size_t>(i)] = first_index + static_cast<std::uint64_t>(c0 + i);
        // d × n column-major is n × d row-major: each column is one simulation's θ.
        std::span<const double> th(theta.data() + c0 * d, static_cast<std::size_t>(nc * d));
        std::span<double> x(out.x.data() + c0 * k, static_cast<std::size_t>(nc * k));
        std::span<std::uint8_t> ok(out.ok.data() + c0, static_cast<std::size_t>(nc));
        const SimulateResult res = inst->simulate(seed, idx, att, th, x, ok);
        if (std::find(ok.begin(), ok.end(), std::uint8_t{0}) != ok.end())
          block_error[static_cast<std::size_t>(b)] =
              res.first_error.empty() ? std::string("non-finite output") : res.first_error;
      }
    });
  });
  instances.clear();
  for (const auto o : out.ok) out.failed += o ? 0 : 1;
  for (const auto& e : block_error)
    if (!e.empty()) {
      out.first_error = e;
      break;
    }
  return out;
}

// ---------------------------------------------------------------------------------------------

RidgeFit ridge_least_squares(const Eigen::MatrixXd& features, const Eigen::MatrixXd& targets,
                             const RidgeSettings& settings) {
  const Eigen::Index N = features.rows(), p = features.cols();
  if (targets.rows() != N)
    throw LocalFsmError(fmt::format("least squares: {} feature rows but {} target rows", N, targets.rows()));
  if (p == 0 || targets.cols() == 0) throw LocalFsmError("least squares: no features or no targets");
  if (N <= p)
    throw LocalFsmError(fmt::format(
        "least squares: {} simulations cannot determine {} feature coefficients; simulate more than {} data sets "
        "per fit (--simulations-per-iteration / --num-simulations) or use fewer features",
        N, p, p));
  if (!features.allFinite() || !targets.allFinite())
    throw LocalFsmError("least squares: a feature or target is not finite");
  if (!(settings.ridge >= 0 && std::isfinite(settings.ridge)))
    throw LocalFsmError(fmt::format("--ridge {} must be non-negative and finite", settings.ridge));
  const double inv_n = 1.0 / static_cast<double>(N);
  Eigen::MatrixXd gram = Eigen::MatrixXd(p, p).setZero().selfadjointView<Eigen::Lower>().rankUpdate(features.adjoint(), inv_n);
  gram.diagonal().array() += settings.ridge;
  const Eigen::MatrixXd rhs = features.transpose() * targets * inv_n;

  RidgeFit fit;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram, Eigen::EigenvaluesOnly);
  const double lo = eig.eigenvalues().minCoeff(), hi = eig.eigenvalues().maxCoeff();
  fit.condition = lo > 0 ? hi / lo : std::numeric_limits<double>::infinity();
  const std::string advice = fmt::format(
      "(ridge {:g}, {} features from {} simulations): features are (nearly) linearly dependent; use fewer "
      "features (e.g. --features linear), more simulations, or a larger --ridge",
      settings.ridge, p, N);
  if (!(fit.condition <= settings.max_condition))
    throw LocalFsmError(fmt::format("least squares is ill-conditioned: condition number {:.3g} exceeds {:.3g} {}",
                                    fit.condition, settings.max_condition, advice));
  const Eigen::LLT<Eigen::MatrixXd> llt(gram);
  if (llt.info() != Eigen::Success)
    throw LocalFsmError(fmt::format("least squares: Cholesky factorisation failed {}", advice));
  fit.coefficients = llt.solve(rhs);
  if (fit.condition > settings.warn_condition)
    fit.warnings.push_back(fmt::format("least squares is poorly conditioned: condition number {:.3g} {}",
                                       fit.condition, advice));
  return fit;
}

// ---------------------------------------------------------------------------------------------

std::string_view to_string(LocalFeatures f) {
  switch (f) {
    case LocalFeatures::linear: return "linear";
    case LocalFeatures::quadratic: return "quadratic";
    case LocalFeatures::learned: return "learned";
  }
  return "?";
}

LocalFeatures parse_local_features(std::string_view s) {
  if (s == "linear") return LocalFeatures::linear;
  if (s == "quadratic") return LocalFeatures::quadratic;
  if (s == "learned") return LocalFeatures::learned;
  throw LocalFsmError(fmt::format("--features '{}': use linear, quadratic or learned", s));
}

std::string_view to_string(Optimizer o) {
  switch (o) {
    case Optimizer::adam: return "adam";
    case Optimizer::rmsprop: return "rmsprop";
    case Optimizer::sgd: return "sgd";
  }
  return "?";
}

Optimizer parse_optimizer(std::string_view s) {
  if (s == "adam") return Optimizer::adam;
  if (s == "rmsprop") return Optimizer::rmsprop;
  if (s == "sgd") return Optimizer::sgd;
  throw LocalFsmError(fmt::format("--optimizer '{}': use adam, rmsprop or sgd", s));
}

Eigen::VectorXd prior_centre(const Prior& prior) {
  const ParameterTransform tr = ParameterTransform::for_prior(prior);
  if (const auto g = prior.gaussian_form()) return tr.to_constrained(g->mean);
  // A box: its centre (u = 0).
  return tr.to_constrained(Eigen::VectorXd::Zero(prior.dim()));
}

Eigen::VectorXd prior_u_scale(const Prior& prior) {
  if (const auto g = prior.gaussian_form()) return g->covariance.diagonal().cwiseSqrt();
  return Eigen::VectorXd::Constant(prior.dim(), std::numbers::pi / std::sqrt(3.0));
}

void check_in_support(const Prior& prior, const Eigen::VectorXd& theta, const std::string& what) {
  if (theta.size() != prior.dim())
    throw LocalFsmError(fmt::format("{} has {} values, the model has {} parameters", what, theta.size(), prior.dim()));
  const std::vector<double> v(theta.data(), theta.data() + theta.size());
  const ParameterTransform tr = ParameterTransform::for_prior(prior);
  if (!theta.allFinite() || !prior.in_support(v) || !tr.to_unconstrained(theta).allFinite())
    throw LocalFsmError(fmt::format("{} = {} is outside the interior of the prior's support ({}); choose a point "
                                    "inside it",
                                    what, format_vector(theta), prior.spec()));
}

// ---------------------------------------------------------------------------------------------

Eigen::MatrixXd LocalScoreFit::raw_features(const Eigen::MatrixXd& x) const {
  switch (kind_) {
    case LocalFeatures::linear: return x;
    case LocalFeatures::quadratic: {
      Eigen::MatrixXd f(2 * x.rows(), x.cols());
      f.topRows(x.rows()) = x;
      f.bottomRows(x.rows()) = x.array().square().matrix();
      return f;
    }
    case LocalFeatures::learned: {
      const Eigen::MatrixXd th = theta_.replicate(1, x.cols());
      return model_->score(th, x);
    }
  }
  return x;
}

Eigen::MatrixXd LocalScoreFit::features(const Eigen::MatrixXd& x) const {
  const Eigen::MatrixXd raw = raw_features(x);
  Eigen::MatrixXd f(raw.rows() + 1, raw.cols());
  f.row(0).setOnes();
  f.bottomRows(raw.rows()) =
      ((raw.colwise() - feature_mean_).array().colwise() / feature_scale_.array()).matrix();
  return f;
}

Eigen::MatrixXd LocalScoreFit::score_u(const Eigen::MatrixXd& x) const {
  return fit_.coefficients.transpose() * features(x);
}

Eigen::MatrixXd LocalScoreFit::score_theta(const Eigen::MatrixXd& x) const {
  return (score_u(x).array().colwise() / jacobian_.array()).matrix();
}

LocalScoreFit fit_local_score(const Simulator& simulator, const Prior& prior, const Eigen::VectorXd& theta_t,
                              const LocalFsmSettings& st) {
  const int d = simulator.parameter_dim(), k = simulator.data_dim();
  if (prior.dim() != d)
    throw LocalFsmError(fmt::format("prior {} has {} dimensions but simulator '{}' has {} parameters", prior.spec(),
                                    prior.dim(), simulator.name(), d));
  if (theta_t.size() != d)
    throw LocalFsmError(fmt::format("theta has {} values, simulator '{}' has {} parameters", theta_t.size(),
                                    simulator.name(), d));
  check_in_support(prior, theta_t, "theta");
  if (st.sigma.size() == 0) throw LocalFsmError("sigma: no proposal scale given");
  const Eigen::VectorXd sigma = broadcast_sigma(st.sigma, d, "sigma");
  if (st.num_parameters == 0 || st.replicates == 0)
    throw LocalFsmError("local score fit: the number of proposals and of replicates must be at least 1");
  if (st.features == LocalFeatures::learned) {
    if (!st.model) throw LocalFsmError("--features learned needs a trained model (--model FILE)");
    if (st.model->theta_dim() != d || st.model->x_dim() != k)
      throw LocalFsmError(fmt::format(
          "the model has {} parameters and {} data values, simulator '{}' has {} and {}", st.model->theta_dim(),
          st.model->x_dim(), simulator.name(), d, k));
    const std::vector<double> v(theta_t.data(), theta_t.data() + d);
    if (!st.model->prior().in_support(v) || !st.model->transform().to_unconstrained(theta_t).allFinite())
      throw LocalFsmError(fmt::format("theta = {} is outside the model's training prior ({})", format_vector(theta_t),
                                      st.model->info().prior));
  }

  LocalScoreFit fit;
  fit.kind_ = st.features;
  fit.model_ = st.model;
  fit.theta_ = theta_t;
  fit.sigma_ = sigma;
  const ParameterTransform tr = ParameterTransform::for_prior(prior);
  fit.u_ = tr.to_unconstrained(theta_t);
  fit.jacobian_ = tr.jacobian(fit.u_);

  // Proposals u_j ~ N(u_t, σ²) and their r data sets each.
  const auto m = static_cast<Eigen::Index>(st.num_parameters), r = static_cast<Eigen::Index>(st.replicates);
  Eigen::MatrixXd u(d, m);
  std::vector<double> z(static_cast<std::size_t>(d));
  for (Eigen::Index j = 0; j < m; ++j) {
    CounterRng rng(st.seed, Stream::local, st.first_index + static_cast<std::uint64_t>(j));
    rng.fill_normal(z);
    for (int i = 0; i < d; ++i) u(i, j) = fit.u_[i] + sigma[i] * z[static_cast<std::size_t>(i)];
  }
  const Eigen::MatrixXd theta_prop = tr.to_constrained(u);
  const Eigen::MatrixXd theta_rep = r == 1 ? theta_prop : theta_prop.replicate(r, 1).reshaped(d, m * r).eval();
  const SimulatedRows sims = simulate_at(simulator, theta_rep, st.seed,
                                         st.first_index * st.replicates, st.threads);
  fit.simulations_ = static_cast<std::uint64_t>(m * r);
  fit.failed_ = sims.failed;
  if (static_cast<double>(sims.failed) > st.max_failure_rate * static_cast<double>(m * r))
    throw SimulationAborted(fmt::format(
        "simulator '{}' failed in {} of {} simulations around theta = {} (first: {}); failures that depend on theta "
        "bias the local score fit: narrow sigma or fix the simulator",
        simulator.name(), sims.failed, m * r, format_vector(theta_t), sims.first_error));

  // Keep the successful rows.
  const Eigen::Index n_ok = m * r - static_cast<Eigen::Index>(sims.failed);
  Eigen::MatrixXd x(k, n_ok), targets(n_ok, d);
  const Eigen::VectorXd inv_var = sigma.array().square().inverse().matrix();
  for (Eigen::Index c = 0, o = 0; c < m * r; ++c) {
    if (!sims.ok[static_cast<std::size_t>(c)]) continue;
    x.col(o) = sims.x.col(c);
    targets.row(o) = ((u.col(c / r) - fit.u_).cwiseProduct(inv_var)).transpose();
    ++o;
  }
  if (sims.failed)
    fit.warnings_.push_back(fmt::format("{} of {} simulations failed and were left out of the fit (first: {})",
                                        sims.failed, m * r, sims.first_error));

  const Eigen::MatrixXd raw = fit.raw_features(x);
  fit.feature_mean_ = raw.rowwise().mean();
  fit.feature_scale_.resize(raw.rows());
  for (Eigen::Index i = 0; i < raw.rows(); ++i) {
    const double var = (raw.row(i).array() - fit.feature_mean_[i]).square().sum() / std::max<double>(1.0, static_cast<double>(n_ok - 1));
    const double sd = std::sqrt(var);
    fit.feature_scale_[i] = sd > 1e-12 * std::max(1.0, std::abs(fit.feature_mean_[i])) ? sd : 1.0;
  }
  const Eigen::MatrixXd phi = fit.features(x);
  fit.fit_ = ridge_least_squares(phi.transpose(), targets, st.ridge);
  fit.warnings_.insert(fit.warnings_.end(), fit.fit_.warnings.begin(), fit.fit_.warnings.end());

  // In-sample diagnostics: R², the smoothed Fisher information and the σ correction.
  const Eigen::MatrixXd s = fit.fit_.coefficients.transpose() * phi;  // d × n_ok
  fit.r_squared_.resize(d);
  for (int i = 0; i < d; ++i) {
    const double mean = targets.col(i).mean();
    const double tot = (targets.col(i).array() - mean).square().sum();
    const double res = (targets.col(i) - s.row(i).transpose()).squaredNorm();
    fit.r_squared_[i] = tot > 0 ? 1.0 - res / tot : 0.0;
  }
  fit.smoothed_fisher_u_ = s * s.transpose() / static_cast<double>(n_ok);
  // C = (I − F̃Σ)⁻¹ = Σ^{-1/2} (I − B)⁻¹ Σ^{1/2} with B = Σ^{1/2} F̃ Σ^{1/2} symmetric.
  const Eigen::VectorXd sd = sigma;
  const Eigen::MatrixXd B = sd.asDiagonal() * fit.smoothed_fisher_u_ * sd.asDiagonal();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(B);
  Eigen::VectorXd lambda = eig.eigenvalues();
  constexpr double kMaxShrink = 0.9;
  fit.smoothing_ratio_ = lambda.maxCoeff();
  lambda = lambda.cwiseMin(kMaxShrink).cwiseMax(0.0);
  const Eigen::MatrixXd inv_i_minus_b =
      eig.eigenvectors() * (1.0 - lambda.array()).inverse().matrix().asDiagonal() * eig.eigenvectors().transpose();
  fit.correction_ = sd.cwiseInverse().asDiagonal() * inv_i_minus_b * sd.asDiagonal();
  return fit;
}

// ---------------------------------------------------------------------------------------------

Eigen::VectorXd FisherEstimate::cramer_rao(double n_observations) const {
  const Eigen::Index d = fisher.rows();
  const Eigen::LLT<Eigen::MatrixXd> llt(fisher);
  if (llt.info() != Eigen::Success) return Eigen::VectorXd::Constant(d, std::numeric_limits<double>::quiet_NaN());
  const Eigen::MatrixXd inv = llt.solve(Eigen::MatrixXd::Identity(d, d));
  return (inv.diagonal() / n_observations).cwiseSqrt();
}

FisherEstimate fisher_from_scores(const Eigen::MatrixXd& scores) {
  const Eigen::Index d = scores.rows(), n = scores.cols();
  if (n < 2) throw LocalFsmError("Fisher information needs at least 2 score samples");
  if (!scores.allFinite()) throw LocalFsmError("Fisher information: a score sample is not finite");
  FisherEstimate f;
  f.samples = static_cast<std::uint64_t>(n);
  const double inv_n = 1.0 / static_cast<double>(n);
  f.fisher = scores * scores.transpose() * inv_n;
  f.mean_score = scores.rowwise().mean();
  f.standard_error.resize(d, d);
  for (Eigen::Index a = 0; a < d; ++a)
    for (Eigen::Index b = 0; b <= a; ++b) {
      const Eigen::ArrayXd prod = scores.row(a).array() * scores.row(b).array();
      const double var = (prod - f.fisher(a, b)).square().sum() / static_cast<double>(n - 1);
      f.standard_error(a, b) = f.standard_error(b, a) = std::sqrt(var * inv_n);
    }
  return f;
}

// ---------------------------------------------------------------------------------------------

std::vector<Eigen::Index> ok_column_indices(const SimulatedRows& rows) {
  std::vector<Eigen::Index> ok;
  ok.reserve(rows.ok.size());
  for (Eigen::Index c = 0; c < rows.x.cols(); ++c)
    if (rows.ok[static_cast<std::size_t>(c)]) ok.push_back(c);
  return ok;
}

namespace {

Eigen::MatrixXd ok_columns(const SimulatedRows& rows) { return rows.x(Eigen::all, ok_column_indices(rows)); }

}  // namespace

LocalFisher local_fisher(const Simulator& simulator, const Prior& prior, const Eigen::VectorXd& theta,
                         LocalFsmSettings settings, std::uint64_t fresh) {
  if (fresh < 2) throw LocalFsmError("Fisher information needs at least 2 fresh simulations");
  LocalFisher out;
  if (settings.sigma.size() == 0) {
    // Pilot fits: σ ← 1/sqrt(F_jj), repeated while the pilot's σ was too large for its
    // correction to be trusted (smoothing ratio above 0.8), at most three times.
    LocalFsmSettings pilot = settings;
    pilot.num_parameters = std::max<std::uint64_t>(1, settings.num_parameters / 4);
    pilot.sigma = 0.1 * prior_u_scale(prior);
    for (int round = 0; round < 3; ++round) {
      pilot.first_index = settings.first_index + kPhaseStride / 2 + static_cast<std::uint64_t>(round) * (kPhaseStride / 8);
      const LocalScoreFit pf = fit_local_score(simulator, prior, theta, pilot);
      out.simulations += pf.simulations();
      out.failed += pf.failed();
      const Eigen::MatrixXd f0 = pf.correction() * pf.smoothed_fisher_u();
      for (Eigen::Index i = 0; i < f0.rows(); ++i)
        if (f0(i, i) > 0 && std::isfinite(f0(i, i))) pilot.sigma[i] = 1.0 / std::sqrt(f0(i, i));
      if (pf.smoothing_ratio() <= 0.8) break;
    }
    settings.sigma = pilot.sigma;
  }
  out.fit = fit_local_score(simulator, prior, theta, settings);
  out.sigma = out.fit.sigma();
  out.simulations += out.fit.simulations();
  out.failed += out.fit.failed();
  out.warnings = out.fit.warnings();
  if (out.fit.smoothing_ratio() > 0.9)
    out.warnings.push_back(fmt::format(
        "sigma is not small against the likelihood's width (sigma²·F̃ reaches {:.3g}; the smoothing correction is "
        "capped at 0.9): the Fisher information is biased low; give a smaller --sigma",
        out.fit.smoothing_ratio()));
  const SimulatedRows rows = simulate_at(simulator, theta.replicate(1, static_cast<Eigen::Index>(fresh)),
                                         derived_seed(settings.seed, 900 + settings.first_index / kPhaseStride), 0,
                                         settings.threads);
  out.simulations += fresh;
  out.failed += rows.failed;
  if (static_cast<double>(rows.failed) > settings.max_failure_rate * static_cast<double>(fresh))
    throw SimulationAborted(fmt::format("simulator '{}' failed in {} of {} simulations at theta = {} (first: {})",
                                        simulator.name(), rows.failed, fresh, format_vector(theta), rows.first_error));
  const Eigen::MatrixXd s_u = out.fit.correction() * out.fit.score_u(ok_columns(rows));
  out.estimate = fisher_from_scores((s_u.array().colwise() / out.fit.jacobian().array()).matrix());
  return out;
}

FisherEstimator parse_fisher_estimator(const std::string& s) {
  if (s == "jacobian") return FisherEstimator::jacobian;
  if (s == "outer") return FisherEstimator::outer;
  throw LocalFsmError(fmt::format("--estimator '{}': use jacobian or outer", s));
}

FisherEstimate model_fisher(const ScoreModel& model, const Simulator& simulator, const Eigen::VectorXd& theta,
                            std::uint64_t n, std::uint64_t seed, int threads, std::uint64_t* failed,
                            FisherEstimator estimator) {
  const int d = simulator.parameter_dim(), k = simulator.data_dim();
  if (model.theta_dim() != d || model.x_dim() != k)
    throw LocalFsmError(fmt::format("the model has {} parameters and {} data values, simulator '{}' has {} and {}",
                                    model.theta_dim(), model.x_dim(), simulator.name(), d, k));
  check_in_support(model.prior(), theta, "theta");
  if (!model.transform().to_unconstrained(theta).allFinite())
    throw LocalFsmError(fmt::format("theta = {} is outside the interior of the model's training prior ({})",
                                    format_vector(theta), model.info().prior));
  if (n < 2) throw LocalFsmError("Fisher information needs at least 2 simulations");
  const SimulatedRows rows = simulate_at(simulator, theta.replicate(1, static_cast<Eigen::Index>(n)), seed, 0, threads);
  if (failed) *failed = rows.failed;
  if (rows.failed * 100 > n)
    throw SimulationAborted(fmt::format("simulator '{}' failed in {} of {} simulations at theta = {} (first: {})",
                                        simulator.name(), rows.failed, n, format_vector(theta), rows.first_error));
  const Eigen::MatrixXd x = ok_columns(rows);
  const Eigen::MatrixXd scores = model.score(theta.replicate(1, x.cols()), x);
  if (estimator == FisherEstimator::outer) return fisher_from_scores(scores);
  // −∂s_a/∂θ_b per sample by central differences; steps 1e-3 of the prior's width (or of
  // max(1, |θ_b|) where the support is unbounded), kept inside the support.
  const Eigen::Index m = x.cols();
  const Eigen::VectorXd lo = model.prior().lower_bounds(), hi = model.prior().upper_bounds();
  std::vector<Eigen::MatrixXd> jac(static_cast<std::size_t>(d));  // jac[b]: d × m, −∂s/∂θ_b
  for (Eigen::Index b = 0; b < d; ++b) {
    double h = std::isfinite(hi[b] - lo[b]) ? 1e-3 * (hi[b] - lo[b]) : 1e-3 * std::max(1.0, std::abs(theta[b]));
    h = std::min({h, 0.5 * (theta[b] - lo[b]), 0.5 * (hi[b] - theta[b])});
    Eigen::VectorXd tp = theta, tm = theta;
    tp[b] += h;
    tm[b] -= h;
    jac[static_cast<std::size_t>(b)] =
        -(model.score(tp.replicate(1, m), x) - model.score(tm.replicate(1, m), x)) / (2 * h);
  }
  FisherEstimate f;
  f.samples = static_cast<std::uint64_t>(m);
  f.mean_score = scores.rowwise().mean();
  f.fisher.resize(d, d);
  f.standard_error.resize(d, d);
  for (Eigen::Index a = 0; a < d; ++a)
    for (Eigen::Index b = 0; b <= a; ++b) {
      // Symmetrised: (J_ab + J_ba)/2 per sample.
      const Eigen::ArrayXd v = 0.5 * (jac[static_cast<std::size_t>(b)].row(a).array() +
                                      jac[static_cast<std::size_t>(a)].row(b).array());
      const double mean = v.mean();
      f.fisher(a, b) = f.fisher(b, a) = mean;
      f.standard_error(a, b) = f.standard_error(b, a) =
          std::sqrt((v - mean).square().sum() / static_cast<double>(m - 1) / static_cast<double>(m));
    }
  return f;
}

// ---------------------------------------------------------------------------------------------

namespace {

struct RunResult {
  Eigen::MatrixXd trajectory_u;  // d × (T + 1)
  Eigen::VectorXd gradient_norm;
  Eigen::VectorXd u_hat;
  std::uint64_t simulations = 0, failed = 0;
  std::vector<std::string> warnings;
  LocalScoreFit last_fit;
};

class StepRule {
 public:
  StepRule(Optimizer o, double lr, int d)
      : opt_(o), lr0_(lr), m_(Eigen::VectorXd::Zero(d)), v_(Eigen::VectorXd::Zero(d)) {}

  // h: the step unit per coordinate (min of σ and the estimate's standard error).
  Eigen::VectorXd step(const Eigen::VectorXd& g, const Eigen::VectorXd& h) {
    lr_ = lr0_ * h;
    ++t_;
    constexpr double eps = 1e-12;
    switch (opt_) {
      case Optimizer::adam: {
        constexpr double b1 = 0.9, b2 = 0.999;
        m_ = b1 * m_ + (1 - b1) * g;
        v_ = b2 * v_ + (1 - b2) * g.cwiseAbs2();
        const double c1 = 1 - std::pow(b1, t_), c2 = 1 - std::pow(b2, t_);
        return lr_.cwiseProduct(((m_ / c1).array() / ((v_ / c2).array().sqrt() + eps)).matrix());
      }
      case Optimizer::rmsprop: {
        constexpr double b2 = 0.9;
        v_ = b2 * v_ + (1 - b2) * g.cwiseAbs2();
        const double c2 = 1 - std::pow(b2, t_);
        return lr_.cwiseProduct((g.array() / ((v_ / c2).array().sqrt() + eps)).matrix());
      }
      case Optimizer::sgd:
        // η h² · (summed score): for a Gaussian likelihood h² n F ≤ 1, so the step contracts for η < 2.
        return lr_.cwiseProduct(h).cwiseProduct(g);
    }
    return Eigen::VectorXd::Zero(g.size());
  }

 private:
  Optimizer opt_;
  double lr0_;
  Eigen::VectorXd lr_;
  Eigen::VectorXd m_, v_;
  int t_ = 0;
};

RunResult run_ascent(const Simulator& simulator, const Prior& prior, const Eigen::MatrixXd& obs,
                     const MleSettings& st, const Eigen::VectorXd& sigma, const Eigen::VectorXd& u0, int iterations,
                     int average_last, std::uint64_t phase, bool report) {
  const ParameterTransform tr = ParameterTransform::for_prior(prior);
  const int d = prior.dim();
  LocalFsmSettings ls;
  ls.replicates = st.replicates;
  ls.num_parameters = std::max<std::uint64_t>(1, st.simulations_per_iteration / st.replicates);
  ls.sigma = sigma;
  ls.features = st.features;
  ls.model = st.model;
  ls.ridge = st.ridge;
  ls.seed = st.seed;
  ls.threads = st.threads;

  RunResult run;
  run.trajectory_u.resize(d, iterations + 1);
  run.trajectory_u.col(0) = u0;
  run.gradient_norm.resize(iterations);
  StepRule rule(st.optimizer, st.learning_rate, d);
  const double n_obs = static_cast<double>(obs.cols());
  Eigen::VectorXd u = u0;
  for (int t = 0; t < iterations; ++t) {
    ls.first_index = phase * kPhaseStride + static_cast<std::uint64_t>(t) * ls.num_parameters;
    Eigen::VectorXd theta = tr.to_constrained(u);
    LocalScoreFit fit = fit_local_score(simulator, prior, theta, ls);
    const Eigen::VectorXd g = fit.score_u(obs).rowwise().sum();
    run.simulations += fit.simulations();
    run.failed += fit.failed();
    for (const auto& w : fit.warnings())
      if (std::find(run.warnings.begin(), run.warnings.end(), w) == run.warnings.end() && run.warnings.size() < 20)
        run.warnings.push_back(w);
    run.gradient_norm[t] = g.norm();
    // Step unit: σ, or the estimate's standard error 1/sqrt(n F_jj) where that is smaller
    // (F = C F̃, the σ-corrected Fisher information of this fit).
    const Eigen::MatrixXd f = fit.correction() * fit.smoothed_fisher_u();
    Eigen::VectorXd h = sigma;
    for (int i = 0; i < d; ++i)
      if (f(i, i) > 0 && std::isfinite(f(i, i))) h[i] = std::min(sigma[i], 1.0 / std::sqrt(n_obs * f(i, i)));
    Eigen::VectorXd next = u + rule.step(g, h);
    // Stay where θ = T(u) is representable (a box coordinate far in its tail rounds to the face).
    const Eigen::VectorXd th_next = tr.to_constrained(next);
    const std::vector<double> v(th_next.data(), th_next.data() + d);
    if (!next.allFinite() || !prior.in_support(v) || !tr.to_unconstrained(th_next).allFinite())
      throw LocalFsmError(fmt::format(
          "the ascent left the prior's support at iteration {} (theta = {}); lower --learning-rate or start closer "
          "(--theta0)",
          t + 1, format_vector(th_next)));
    u = next;
    run.trajectory_u.col(t + 1) = u;
    if (report && st.on_iteration) st.on_iteration(t + 1, tr.to_constrained(u), run.gradient_norm[t]);
    if (t + 1 == iterations) run.last_fit = std::move(fit);
  }
  const int K = std::clamp(average_last, 1, iterations);
  run.u_hat = run.trajectory_u.rightCols(K).rowwise().mean();
  return run;
}

// Summary of observation sets: per column mean, and standard deviation when n ≥ 2 (k or 2k values).
Eigen::VectorXd summary(const Eigen::MatrixXd& x) {
  const Eigen::Index k = x.rows(), n = x.cols();
  Eigen::VectorXd s(n >= 2 ? 2 * k : k);
  const Eigen::VectorXd mean = x.rowwise().mean();
  s.head(k) = mean;
  if (n >= 2)
    s.tail(k) = ((x.colwise() - mean).array().square().rowwise().sum() / static_cast<double>(n - 1)).sqrt().matrix();
  return s;
}

}  // namespace

MleResult maximum_likelihood(const Simulator& simulator, const Prior& prior, const Eigen::MatrixXd& observations,
                             const MleSettings& st) {
  const auto start = std::chrono::steady_clock::now();
  const int d = simulator.parameter_dim(), k = simulator.data_dim();
  if (prior.dim() != d)
    throw LocalFsmError(fmt::format("prior {} has {} dimensions but simulator '{}' has {} parameters", prior.spec(),
                                    prior.dim(), simulator.name(), d));
  if (observations.rows() != k)
    throw LocalFsmError(fmt::format("observations have {} values per row, simulator '{}' produces {}",
                                    observations.rows(), simulator.name(), k));
  if (observations.cols() == 0) throw LocalFsmError("no observations");
  if (!observations.allFinite()) throw LocalFsmError("an observation is not finite");
  if (st.iterations < 1) throw LocalFsmError("--iterations must be at least 1");
  if (st.average_last < 0) throw LocalFsmError("--average must be non-negative");
  if (st.replicates == 0) throw LocalFsmError("--replicates must be at least 1");
  if (st.simulations_per_iteration < st.replicates)
    throw LocalFsmError("--simulations-per-iteration must be at least --replicates");
  if (!(st.learning_rate > 0 && std::isfinite(st.learning_rate)))
    throw LocalFsmError(fmt::format("--learning-rate {} must be positive", st.learning_rate));

  const ParameterTransform tr = ParameterTransform::for_prior(prior);
  const Eigen::VectorXd theta0 = st.theta0.size() ? st.theta0 : prior_centre(prior);
  check_in_support(prior, theta0, "--theta0");
  if (st.sigma.size()) broadcast_sigma(st.sigma, d, "--sigma");  // validate before any work
  Eigen::VectorXd u_start = tr.to_unconstrained(theta0);

  MleResult result;
  result.num_observations = static_cast<std::uint64_t>(observations.cols());
  const int T = st.iterations;
  const int K = st.average_last > 0 ? std::min(st.average_last, T) : std::max(1, T / 2);
  result.average_last = K;
  const double n_obs = static_cast<double>(observations.cols());

  Eigen::VectorXd sigma;
  if (st.sigma.size()) {
    sigma = broadcast_sigma(st.sigma, d, "--sigma");
    result.sigma_source = "--sigma";
  } else {
    // Pilot calibration: short runs from the largest σ to the smallest, each warm-started at the
    // previous estimate; the σ whose estimate best reproduces the observed summary wins.
    if (st.pilot_fractions.empty()) throw LocalFsmError("pilot calibration: no grid of sigma fractions");
    const Eigen::VectorXd scale = prior_u_scale(prior);
    std::vector<double> fractions = st.pilot_fractions;
    std::sort(fractions.begin(), fractions.end(), std::greater<>());
    const int Tp = st.pilot_iterations > 0 ? st.pilot_iterations : std::max(10, T / 5);
    const Eigen::VectorXd t_obs = summary(observations);
    const auto n = observations.cols();
    // Replicated observation sets: at most 10 fits' worth of simulations per check.
    const auto R = static_cast<Eigen::Index>(std::clamp<std::uint64_t>(
        10 * st.simulations_per_iteration / static_cast<std::uint64_t>(n), 20, std::max<std::uint64_t>(20, st.pilot_replicates)));
    // Warm-up at the largest σ, so that every pilot starts from the same point near the optimum
    // and is judged on its estimate, not on how far it had to travel.
    const RunResult warm = run_ascent(simulator, prior, observations, st, fractions.front() * scale, u_start, Tp,
                                      std::max(1, Tp / 2), 1, false);
    result.simulations += warm.simulations;
    result.failed += warm.failed;
    std::vector<Eigen::VectorXd> pilot_u;
    for (std::size_t g = 0; g < fractions.size(); ++g) {
      PilotRun pr;
      pr.sigma = fractions[g] * scale;
      const RunResult run = run_ascent(simulator, prior, observations, st, pr.sigma, warm.u_hat, Tp,
                                       std::max(1, Tp / 2), 2 + g, false);
      result.simulations += run.simulations;
      result.failed += run.failed;
      pilot_u.push_back(run.u_hat);
      pr.theta = tr.to_constrained(run.u_hat);
      // Predictive check: R sets of n observations at the pilot estimate.
      const Eigen::MatrixXd th = pr.theta.replicate(1, R * n);
      const SimulatedRows rep = simulate_at(simulator, th, derived_seed(st.seed, 100 + g), 0, st.threads);
      result.simulations += static_cast<std::uint64_t>(R * n);
      result.failed += rep.failed;
      Eigen::MatrixXd t_rep(t_obs.size(), R);
      Eigen::Index used = 0;
      for (Eigen::Index j = 0; j < R; ++j) {
        bool all_ok = true;
        for (Eigen::Index c = j * n; c < (j + 1) * n; ++c) all_ok = all_ok && rep.ok[static_cast<std::size_t>(c)];
        if (all_ok) t_rep.col(used++) = summary(rep.x.middleCols(j * n, n));
      }
      if (used < 2) throw LocalFsmError("pilot calibration: the simulations at the pilot estimate failed");
      const Eigen::MatrixXd tr_used = t_rep.leftCols(used);
      const Eigen::VectorXd mean = tr_used.rowwise().mean();
      const Eigen::VectorXd var =
          (tr_used.colwise() - mean).array().square().rowwise().sum().matrix() / static_cast<double>(used - 1);
      pr.discrepancy = 0;
      for (Eigen::Index i = 0; i < t_obs.size(); ++i)
        pr.discrepancy += (t_obs[i] - mean[i]) * (t_obs[i] - mean[i]) / std::max(var[i], 1e-300);
      pr.discrepancy /= static_cast<double>(t_obs.size());
      if (st.on_pilot) st.on_pilot(pr);
      result.pilot.push_back(pr);
    }
    // The largest σ whose discrepancy is within the tolerance of the smallest: a larger σ gives a
    // less noisy fit, a smaller one less smoothing bias; differences below the tolerance are noise.
    double best = std::numeric_limits<double>::infinity();
    for (const auto& pr : result.pilot) best = std::min(best, pr.discrepancy);
    for (std::size_t g = 0; g < result.pilot.size(); ++g)
      if (result.pilot[g].discrepancy <= best + st.pilot_tolerance) {
        sigma = result.pilot[g].sigma;
        u_start = pilot_u[g];
        break;
      }
    result.sigma_source = "pilot calibration";
  }
  result.sigma = sigma;

  RunResult run = run_ascent(simulator, prior, observations, st, sigma, u_start, T, K, 0, true);
  result.simulations += run.simulations;
  result.failed += run.failed;
  result.warnings = run.warnings;
  result.u_hat = run.u_hat;
  result.theta_hat = tr.to_constrained(run.u_hat);
  result.trajectory_u = run.trajectory_u.transpose();
  result.trajectory = tr.to_constrained(run.trajectory_u).transpose();
  result.gradient_norm = run.gradient_norm;

  // Fisher information at θ̂: a σ-corrected local fit from 4 M simulations with σ chosen by
  // local_fisher's pilot fits, and M fresh simulations at θ̂.
  LocalFsmSettings ls;
  ls.replicates = st.replicates;
  ls.num_parameters = std::max<std::uint64_t>(1, 4 * st.simulations_per_iteration / st.replicates);
  ls.features = st.features;
  ls.model = st.model;
  ls.ridge = st.ridge;
  ls.seed = st.seed;
  ls.threads = st.threads;
  ls.first_index = 900 * kPhaseStride;
  const LocalFisher lf = local_fisher(simulator, prior, result.theta_hat, ls,
                                      std::max<std::uint64_t>(100, st.simulations_per_iteration));
  result.simulations += lf.simulations;
  result.failed += lf.failed;
  for (const auto& w : lf.warnings) result.warnings.push_back("Fisher information fit: " + w);
  result.fisher = lf.estimate.fisher;
  result.fisher_standard_error = lf.estimate.standard_error;
  result.standard_error = lf.estimate.cramer_rao(n_obs);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace fsbi
