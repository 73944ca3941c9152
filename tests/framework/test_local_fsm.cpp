// Local Fisher score matching (fsbi/local_fsm.hpp) against analytic scores, through the real
// bundled plugins and the parallel engine.
#include "fsbi/local_fsm.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/random.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

namespace fsbi {
namespace {

using testing::HasSubstr;

std::shared_ptr<const Simulator> open(const std::string& name, const SimulatorOptions& options = {}) {
  return open_simulator(name, options, {test::bundled_plugin_dir()});
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(LocalFsm, LinearFitIsTheGaussianMeanScore) {
  // x ~ N(θ, I): the σ-smoothed score is (x − θ_t)/(1 + σ²), and the corrected score C·S_W is
  // the score x − θ_t itself.
  const auto sim = open("gaussian_mean");
  const auto prior = parse_prior(*sim->default_prior(), 2);
  LocalFsmSettings st;
  st.num_parameters = 80000;
  st.sigma = Eigen::VectorXd::Constant(1, 0.5);
  st.seed = test::announce_seed("local fit", 11);
  Eigen::VectorXd theta_t(2);
  theta_t << 1.0, -0.5;
  const LocalScoreFit fit = fit_local_score(*sim, *prior, theta_t, st);
  Eigen::MatrixXd x(2, 25);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) {
      x(0, 5 * i + j) = theta_t[0] - 2 + i;
      x(1, 5 * i + j) = theta_t[1] - 2 + j;
    }
  const double s2 = 0.25;
  const Eigen::MatrixXd smoothed = (x.colwise() - theta_t) / (1 + s2);
  const double err_smoothed = (fit.score_u(x) - smoothed).cwiseAbs().maxCoeff();
  const double err_score = (fit.correction() * fit.score_u(x) - (x.colwise() - theta_t)).cwiseAbs().maxCoeff();
  std::printf("[local fsm] max |S_W − (x−θ)/(1+σ²)| = %.4f, max |C·S_W − (x−θ)| = %.4f over |x−θ| ≤ 2\n", err_smoothed,
              err_score);
  EXPECT_LT(err_smoothed, 0.1);
  EXPECT_LT(err_score, 0.15);
  // Identity coordinates: θ and u scores agree.
  EXPECT_TRUE(fit.score_theta(x).isApprox(fit.score_u(x)));
  // Smoothed Fisher information (1 + σ²)⁻¹ I = 0.8 I, corrected back to I.
  const Eigen::MatrixXd f = fit.correction() * fit.smoothed_fisher_u();
  std::printf("[local fsm] smoothed F diag (%.4f, %.4f), corrected (%.4f, %.4f)\n", fit.smoothed_fisher_u()(0, 0),
              fit.smoothed_fisher_u()(1, 1), f(0, 0), f(1, 1));
  EXPECT_NEAR(fit.smoothed_fisher_u()(0, 0), 0.8, 0.04);
  EXPECT_NEAR(f(0, 0), 1.0, 0.06);
  EXPECT_NEAR(f(1, 1), 1.0, 0.06);
  EXPECT_NEAR(f(0, 1), 0.0, 0.05);
  EXPECT_EQ(fit.simulations(), 80000u);
  EXPECT_EQ(fit.failed(), 0u);

  // Reproducible for any thread count.
  st.threads = 1;
  const LocalScoreFit one = fit_local_score(*sim, *prior, theta_t, st);
  st.threads = 2;
  const LocalScoreFit two = fit_local_score(*sim, *prior, theta_t, st);
  EXPECT_TRUE(one.coefficients() == two.coefficients());
  EXPECT_TRUE(one.coefficients() == fit.coefficients());
}

// Relative RMS error of a fitted score against the analytic one, on fresh data at θ_t.
double relative_rmse(const LocalScoreFit& fit, const Simulator& sim, double v, std::uint64_t seed) {
  const SimulatedRows rows = simulate_at(sim, Eigen::MatrixXd::Constant(1, 5000, v), seed, 0, 0);
  const Eigen::ArrayXd x = rows.x.row(0).transpose().array();
  const Eigen::ArrayXd truth = x.square() / (2 * v) - 0.5;  // ∂/∂log v log N(x; 0, v)
  const Eigen::ArrayXd fitted = (fit.correction() * fit.score_u(rows.x)).row(0).transpose().array();
  return std::sqrt((fitted - truth).square().mean() / truth.square().mean());
}

TEST(LocalFsm, ScaleParameterNeedsQuadraticFeatures) {
  // x ~ N(0, v): the score in u = log v is x²/(2v) − 1/2, even in x. Linear features cannot
  // represent it (the best linear fit is a constant); quadratic features can.
  const auto sim = open("gaussian_scale");
  const auto prior = parse_prior(*sim->default_prior(), 1);
  LocalFsmSettings st;
  st.num_parameters = 160000;
  st.sigma = Eigen::VectorXd::Constant(1, 0.15);
  st.seed = test::announce_seed("scale fit", 12);
  const double v = 2.0;
  st.features = LocalFeatures::linear;
  const LocalScoreFit lin = fit_local_score(*sim, *prior, Eigen::VectorXd::Constant(1, v), st);
  st.features = LocalFeatures::quadratic;
  const LocalScoreFit quad = fit_local_score(*sim, *prior, Eigen::VectorXd::Constant(1, v), st);
  const std::uint64_t check_seed = test::announce_seed("fresh data", 13);
  const double e_lin = relative_rmse(lin, *sim, v, check_seed), e_quad = relative_rmse(quad, *sim, v, check_seed);
  std::printf("[local fsm] scale parameter: relative RMS score error linear %.3f (R² %.4f), quadratic %.3f (R² %.4f)\n",
              e_lin, lin.r_squared()[0], e_quad, quad.r_squared()[0]);
  EXPECT_GT(e_lin, 0.9);
  EXPECT_LT(lin.r_squared()[0], 0.002);
  EXPECT_LT(e_quad, 0.1);
  EXPECT_GT(quad.r_squared()[0], 0.005);
  // θ = v: s_v = s_u / v.
  const Eigen::MatrixXd x = Eigen::MatrixXd::Constant(1, 1, 1.5);
  EXPECT_NEAR(quad.score_theta(x)(0, 0), quad.score_u(x)(0, 0) / v, 1e-12);
}

TEST(LocalFsm, IllConditionedSystems) {
  // Two identical feature columns: singular without a ridge term, solvable (with a warning and
  // the coefficient shared equally) with one.
  const std::uint64_t seed = test::announce_seed("ill-conditioned", 14);
  const int n = 1000;
  Eigen::MatrixXd phi(n, 3), y(n, 1);
  for (int i = 0; i < n; ++i) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(i));
    const double z = rng.normal();
    phi.row(i) << 1.0, z, z;
    y(i, 0) = 2.0 * z + 0.1 * rng.normal();
  }
  RidgeSettings exact;
  exact.ridge = 0;
  const std::string msg = error_of([&] { ridge_least_squares(phi, y, exact); });
  std::printf("[local fsm] ridge 0: %s\n", msg.c_str());
  EXPECT_THAT(msg, HasSubstr("ill-conditioned: condition number"));
  EXPECT_THAT(msg, HasSubstr("larger --ridge"));
  RidgeSettings ridge;
  ridge.ridge = 1e-8;
  const RidgeFit fit = ridge_least_squares(phi, y, ridge);
  std::printf("[local fsm] ridge 1e-8: condition %.3g, coefficients (%.6f, %.6f)\n", fit.condition,
              fit.coefficients(1, 0), fit.coefficients(2, 0));
  EXPECT_GT(fit.condition, 1e7);
  ASSERT_EQ(fit.warnings.size(), 1u);
  EXPECT_THAT(fit.warnings[0], HasSubstr("poorly conditioned"));
  EXPECT_NEAR(fit.coefficients(1, 0), fit.coefficients(2, 0), 1e-6);
  EXPECT_NEAR(fit.coefficients(1, 0) + fit.coefficients(2, 0), 2.0, 0.02);
  // A well-posed system: no warning, condition near 1.
  const RidgeFit good = ridge_least_squares(phi.leftCols(2), y);
  EXPECT_TRUE(good.warnings.empty());
  EXPECT_LT(good.condition, 1.5);

  // Fewer simulations than features: quadratic features of 50 data values need 101 coefficients.
  const auto sim = open("gaussian_mean", {{"dim", "50"}});
  const auto prior = parse_prior(*sim->default_prior(), 50);
  LocalFsmSettings st;
  st.num_parameters = 80;
  st.sigma = Eigen::VectorXd::Constant(1, 1.0);
  st.features = LocalFeatures::quadratic;
  EXPECT_THAT(error_of([&] { fit_local_score(*sim, *prior, Eigen::VectorXd::Zero(50), st); }),
              HasSubstr("80 simulations cannot determine 101 feature coefficients"));
}

TEST(LocalFsm, BadInputsGiveClearErrors) {
  const auto scale = open("gaussian_scale");
  const auto scale_prior = parse_prior(*scale->default_prior(), 1);
  LocalFsmSettings st;
  st.num_parameters = 100;
  st.sigma = Eigen::VectorXd::Constant(1, 0.1);
  EXPECT_THAT(error_of([&] { fit_local_score(*scale, *scale_prior, Eigen::VectorXd::Constant(1, -1.0), st); }),
              HasSubstr("theta = (-1) is outside the interior of the prior's support (lognormal("));
  const auto mean = open("gaussian_mean");
  const auto prior = parse_prior(*mean->default_prior(), 2);
  st.sigma = Eigen::VectorXd::Constant(1, 0.0);
  EXPECT_THAT(error_of([&] { fit_local_score(*mean, *prior, Eigen::VectorXd::Zero(2), st); }),
              HasSubstr("sigma = 0 must be positive and finite"));
  st.sigma = Eigen::VectorXd::Constant(1, -0.5);
  EXPECT_THAT(error_of([&] { fit_local_score(*mean, *prior, Eigen::VectorXd::Zero(2), st); }),
              HasSubstr("sigma = -0.5 must be positive"));
  st.sigma = Eigen::VectorXd::Constant(3, 0.5);
  EXPECT_THAT(error_of([&] { fit_local_score(*mean, *prior, Eigen::VectorXd::Zero(2), st); }),
              HasSubstr("sigma has 3 values; give one value or one per parameter (2)"));
  st.sigma = Eigen::VectorXd::Constant(1, 0.5);
  EXPECT_THAT(error_of([&] { fit_local_score(*mean, *prior, Eigen::VectorXd::Zero(3), st); }),
              HasSubstr("theta has 3 values, simulator 'gaussian_mean' has 2 parameters"));
  const auto prior3 = parse_prior("normal(0, 1)", 3);
  EXPECT_THAT(error_of([&] { fit_local_score(*mean, *prior3, Eigen::VectorXd::Zero(2), st); }),
              HasSubstr("has 3 dimensions but simulator 'gaussian_mean' has 2 parameters"));
  st.features = LocalFeatures::learned;
  EXPECT_THAT(error_of([&] { fit_local_score(*mean, *prior, Eigen::VectorXd::Zero(2), st); }),
              HasSubstr("--features learned needs a trained model"));
  EXPECT_THAT(error_of([] { parse_local_features("cubic"); }), HasSubstr("--features 'cubic'"));

  MleSettings ms;
  ms.iterations = 2;
  EXPECT_THAT(error_of([&] { maximum_likelihood(*mean, *prior, Eigen::MatrixXd::Zero(3, 4), ms); }),
              HasSubstr("observations have 3 values per row, simulator 'gaussian_mean' produces 2"));
  ms.theta0 = Eigen::VectorXd::Constant(1, 0.0);
  EXPECT_THAT(error_of([&] { maximum_likelihood(*scale, *scale_prior, Eigen::MatrixXd::Ones(1, 4), ms); }),
              HasSubstr("--theta0 = (0) is outside the interior of the prior's support"));
}

TEST(LocalFsm, FisherFromScoresAndCramerRao) {
  // Scores x − θ of x ~ N(θ, I) at 40000 fresh simulations: F ≈ I, bound 1/√n.
  const auto sim = open("gaussian_mean");
  const std::uint64_t seed = test::announce_seed("fisher", 15);
  Eigen::VectorXd theta(2);
  theta << 0.3, -1.0;
  const SimulatedRows rows = simulate_at(*sim, theta.replicate(1, 40000), seed, 0, 0);
  const FisherEstimate f = fisher_from_scores(rows.x.colwise() - theta);
  std::printf("[local fsm] F = [[%.4f, %.4f], [%.4f, %.4f]], se(F11) = %.4f\n", f.fisher(0, 0), f.fisher(0, 1),
              f.fisher(1, 0), f.fisher(1, 1), f.standard_error(0, 0));
  EXPECT_NEAR(f.fisher(0, 0), 1.0, 4 * f.standard_error(0, 0));
  EXPECT_NEAR(f.fisher(1, 1), 1.0, 4 * f.standard_error(1, 1));
  EXPECT_NEAR(f.fisher(0, 1), 0.0, 4 * f.standard_error(0, 1));
  EXPECT_NEAR(f.standard_error(0, 0), std::sqrt(2.0 / 40000), 0.001);
  const Eigen::VectorXd cr = f.cramer_rao(25);
  EXPECT_NEAR(cr[0], 0.2, 0.005);
}

}  // namespace
}  // namespace fsbi
