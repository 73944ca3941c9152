// Tests of the priors: sample moments against the analytic ones, log-densities against closed
// forms and numerical normalisation, gradients against central differences, determinism and the
// fixed number of random draws per sample, spec round-trips, every error message, and that the
// hot-path calls never allocate.
//
// Monte-Carlo checks allow 5 standard errors (two-sided false-alarm rate ~6e-7 per check) with
// fixed, printed seeds.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/prior.hpp"

#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>
#include <numbers>
#include <string>
#include <vector>

// Counts every operator new in this executable, so a test can assert that the hot-path calls
// (sample, log_density, grad_log_density, in_support) allocate nothing. noinline: once inlined,
// GCC sees `free` applied to the result of `new` and warns (-Wmismatched-new-delete).
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace fsbi {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kSigmas = 5.0;  // Monte-Carlo tolerance in standard errors
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> draw(const Prior& prior, std::uint64_t seed, std::uint64_t index, std::uint64_t attempt = 0) {
  CounterRng rng(seed, Stream::prior, index, attempt);
  std::vector<double> theta(static_cast<std::size_t>(prior.dim()));
  prior.sample(rng, theta);
  return theta;
}

// n draws, one per simulation index as the engine makes them; rows are draws.
Eigen::MatrixXd draws(const Prior& prior, std::uint64_t seed, int n) {
  Eigen::MatrixXd out(n, prior.dim());
  std::vector<double> theta(static_cast<std::size_t>(prior.dim()));
  for (int i = 0; i < n; ++i) {
    CounterRng rng(seed, Stream::prior, static_cast<std::uint64_t>(i));
    prior.sample(rng, theta);
    for (int j = 0; j < prior.dim(); ++j) out(i, j) = theta[static_cast<std::size_t>(j)];
  }
  return out;
}

// Checks the sample mean and covariance of `x` (rows are draws) against the analytic ones. The
// standard error of each estimate is estimated from the sample itself: SE(mean_j) = sd_j/√n and
// SE(cov_jk) = sd[(x_j - x̄_j)(x_k - x̄_k)]/√n, which needs no family-specific fourth moments.
void expect_moments(const Eigen::MatrixXd& x, const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov,
                    const std::string& what) {
  const Eigen::Index n = x.rows(), d = x.cols();
  const Eigen::RowVectorXd xbar = x.colwise().mean();
  const Eigen::MatrixXd centred = x.rowwise() - xbar;
  double worst_z = 0.0;
  for (Eigen::Index j = 0; j < d; ++j) {
    const double se = std::sqrt(cov(j, j) / static_cast<double>(n));
    worst_z = std::max(worst_z, std::abs(xbar[j] - mean[j]) / se);
    EXPECT_NEAR(xbar[j], mean[j], kSigmas * se) << what << ": mean[" << j << "]";
    for (Eigen::Index k = 0; k <= j; ++k) {
      const Eigen::ArrayXd products = centred.col(j).array() * centred.col(k).array();
      const double estimate = products.sum() / static_cast<double>(n - 1);
      const double sd_products = std::sqrt((products - products.mean()).square().sum() / static_cast<double>(n - 1));
      const double se_cov = sd_products / std::sqrt(static_cast<double>(n));
      worst_z = std::max(worst_z, std::abs(estimate - cov(j, k)) / se_cov);
      EXPECT_NEAR(estimate, cov(j, k), kSigmas * se_cov) << what << ": cov[" << j << "][" << k << "]";
    }
  }
  std::printf("%s: %lld draws, worst |estimate - truth| = %.2f standard errors\n", what.c_str(),
              static_cast<long long>(n), worst_z);
}

// ---- Sampling moments -----------------------------------------------------------------------

constexpr int kMomentDraws = 100'000;

TEST(Prior, UniformSampleMomentsAndSupport) {
  const std::uint64_t seed = test::announce_seed("Prior.UniformMoments", 101);
  const auto prior = parse_prior("uniform([-1, 0, 2], [1, 0.5, 10])", 3);
  const Eigen::MatrixXd x = draws(*prior, seed, kMomentDraws);
  const Eigen::Vector3d low(-1, 0, 2), high(1, 0.5, 10);
  const Eigen::Vector3d width = high - low;
  // U(a, b): mean (a + b)/2, variance (b - a)²/12, components independent.
  expect_moments(x, (low + high) / 2, Eigen::Matrix3d(width.array().square().matrix().asDiagonal()) / 12.0,
                 "uniform");
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (int j = 0; j < 3; ++j) {
      ASSERT_GE(x(i, j), low[j]);
      ASSERT_LE(x(i, j), high[j]);
    }
  }
}

TEST(Prior, NormalSampleMoments) {
  const std::uint64_t seed = test::announce_seed("Prior.NormalMoments", 102);
  const auto prior = parse_prior("normal([1, -2, 0], [0.5, 3, 1])", 3);
  const Eigen::MatrixXd x = draws(*prior, seed, kMomentDraws);
  expect_moments(x, Eigen::Vector3d(1, -2, 0), Eigen::Vector3d(0.25, 9, 1).asDiagonal().toDenseMatrix(), "normal");
}

TEST(Prior, MvNormalSampleMeanAndCovariance) {
  const std::uint64_t seed = test::announce_seed("Prior.MvNormalMoments", 103);
  const auto prior = parse_prior("mvnormal([1, -1, 0.5], [[1, 0.6, -0.3], [0.6, 2, 0.4], [-0.3, 0.4, 0.5]])", 3);
  Eigen::Matrix3d cov;
  cov << 1, 0.6, -0.3, 0.6, 2, 0.4, -0.3, 0.4, 0.5;
  const Eigen::MatrixXd x = draws(*prior, seed, kMomentDraws);
  expect_moments(x, Eigen::Vector3d(1, -1, 0.5), cov, "mvnormal");
}

TEST(Prior, LogNormalSampleMomentsAndSupport) {
  const std::uint64_t seed = test::announce_seed("Prior.LogNormalMoments", 104);
  const Eigen::Vector2d mu(-0.5, 1.0), sigma(0.25, 0.1);
  const auto prior = parse_prior("lognormal([-0.5, 1], [0.25, 0.1])", 2);
  const Eigen::MatrixXd x = draws(*prior, seed, kMomentDraws);
  ASSERT_TRUE((x.array() > 0).all());
  // log θ ~ N(mu, sigma²) exactly; θ itself has mean e^{mu + sigma²/2} and variance
  // (e^{sigma²} - 1)·e^{2mu + sigma²}.
  expect_moments(x.array().log().matrix(), mu, sigma.array().square().matrix().asDiagonal().toDenseMatrix(),
                 "lognormal, log θ");
  const Eigen::Vector2d mean = (mu.array() + sigma.array().square() / 2).exp();
  const Eigen::Vector2d var =
      (sigma.array().square().exp() - 1) * (2 * mu.array() + sigma.array().square()).exp();
  expect_moments(x, mean, var.asDiagonal().toDenseMatrix(), "lognormal, θ");
}

// ---- Determinism and the fixed draw count -----------------------------------------------------

const char* const kAllFamilies[] = {
    "uniform([-1, 0, 2], [1, 0.5, 10])",
    "normal([1, -2, 0], [0.5, 3, 1])",
    "mvnormal([1, -1, 0.5], [[1, 0.6, -0.3], [0.6, 2, 0.4], [-0.3, 0.4, 0.5]])",
    "lognormal([-0.5, 1, 0], [0.25, 0.1, 1])",
};

TEST(Prior, SampleIsAFunctionOfSeedIndexAttempt) {
  const std::uint64_t seed = test::announce_seed("Prior.Determinism", 105);
  for (const char* spec : kAllFamilies) {
    const auto prior = parse_prior(spec, 3);
    const std::vector<double> theta = draw(*prior, seed, 17, 2);
    EXPECT_EQ(draw(*prior, seed, 17, 2), theta) << spec << ": same (seed, index, attempt)";
    // A fresh parse of the same spec draws the same θ too.
    EXPECT_EQ(draw(*parse_prior(spec, 3), seed, 17, 2), theta) << spec;
    const std::vector<double> other_index = draw(*prior, seed, 18, 2);
    const std::vector<double> other_attempt = draw(*prior, seed, 17, 3);
    const std::vector<double> other_seed = draw(*prior, seed + 1, 17, 2);
    for (std::size_t j = 0; j < theta.size(); ++j) {
      EXPECT_NE(other_index[j], theta[j]) << spec << ": index 18 vs 17, component " << j;
      EXPECT_NE(other_attempt[j], theta[j]) << spec << ": attempt 3 vs 2, component " << j;
      EXPECT_NE(other_seed[j], theta[j]) << spec << ": seed+1, component " << j;
    }
  }
}

// sample() must leave the generator exactly where d uniforms (box) or d normals (the Gaussian
// families) leave it, whatever θ comes out: the engine's reproducibility depends on it.
TEST(Prior, SampleConsumesAFixedNumberOfDraws) {
  const std::uint64_t seed = test::announce_seed("Prior.DrawCount", 106);
  for (int d = 1; d <= 4; ++d) {
    const std::vector<std::string> specs = {"uniform(-1, 1)", "normal(0, 1)", "lognormal(0, 1)",
                                            d == 1   ? "mvnormal(0, [[2]])"
                                            : d == 2 ? "mvnormal(0, [[2, 1], [1, 2]])"
                                            : d == 3 ? "mvnormal(0, [[2, 1, 0], [1, 2, 1], [0, 1, 2]])"
                                                     : "mvnormal(0, [[2, 1, 0, 0], [1, 2, 1, 0], [0, 1, 2, 1], "
                                                       "[0, 0, 1, 2]])"};
    for (const std::string& spec : specs) {
      const auto prior = parse_prior(spec, d);
      for (std::uint64_t index = 0; index < 20; ++index) {
        CounterRng used(seed, Stream::prior, index);
        std::vector<double> theta(static_cast<std::size_t>(d));
        prior->sample(used, theta);
        prior->sample(used, theta);  // twice: an odd d leaves a Box–Muller spare between calls
        CounterRng reference(seed, Stream::prior, index);
        for (int k = 0; k < 2 * d; ++k) {
          if (prior->kind() == "uniform") {
            reference.uniform();
          } else {
            reference.normal();
          }
        }
        ASSERT_EQ(used.next_u64(), reference.next_u64()) << spec << ", d = " << d << ", index " << index;
        ASSERT_EQ(used.normal(), reference.normal()) << spec << ", d = " << d << ", index " << index;
      }
    }
  }
}

// θ = mean + L z with z the first d normals of the generator, L the lower Cholesky factor.
TEST(Prior, MvNormalSampleIsMeanPlusCholeskyTimesNormals) {
  const std::uint64_t seed = test::announce_seed("Prior.MvNormalCholesky", 107);
  const auto prior = parse_prior("mvnormal([1, -1, 0.5], [[1, 0.6, -0.3], [0.6, 2, 0.4], [-0.3, 0.4, 0.5]])", 3);
  Eigen::Matrix3d cov;
  cov << 1, 0.6, -0.3, 0.6, 2, 0.4, -0.3, 0.4, 0.5;
  const Eigen::Matrix3d l = cov.llt().matrixL();
  for (std::uint64_t index = 0; index < 50; ++index) {
    CounterRng rng(seed, Stream::prior, index);
    Eigen::Vector3d z;  // drawn in sequence: constructor arguments have no evaluation order
    for (int j = 0; j < 3; ++j) z[j] = rng.normal();
    const Eigen::Vector3d expected = Eigen::Vector3d(1, -1, 0.5) + l * z;
    const std::vector<double> theta = draw(*prior, seed, index);
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(theta[static_cast<std::size_t>(j)], expected[j], 1e-14 * (1 + std::abs(expected[j])))
          << "index " << index << " component " << j;
    }
  }
}

// ---- Log-density --------------------------------------------------------------------------------

double log_density(const Prior& prior, std::vector<double> theta) { return prior.log_density(theta); }

// Reference values computed independently with Python's math module from the textbook formulas;
// the tolerance allows a few ulp for a different order of summation.
void expect_close(double value, double reference) {
  EXPECT_NEAR(value, reference, 1e-14 * std::max(1.0, std::abs(reference)));
}

TEST(Prior, LogDensityMatchesClosedForms) {
  const double half_log_2pi = 0.9189385332046727;  // ½ log 2π
  expect_close(log_density(*parse_prior("normal(0, 1)", 1), {0.0}), -half_log_2pi);
  expect_close(log_density(*parse_prior("normal(0, 1)", 1), {1.0}), -half_log_2pi - 0.5);
  expect_close(log_density(*parse_prior("normal(1, 2)", 1), {3.0}), -2.112085713764618);
  expect_close(log_density(*parse_prior("normal([1, -2], [0.5, 2])", 2), {0.3, 1.0}), -3.9428770664093453);

  // 2-D Gaussian: -log 2π - ½ log det Σ - ½ δᵀΣ⁻¹δ with the explicit 2×2 inverse.
  {
    const double a = 2.0, b = 0.6, c = 1.0, det = a * c - b * b;
    const double dx = 0.5 - 1.0, dy = 0.2 + 1.0;
    const double quad = (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / det;
    const double closed = -std::log(2 * std::numbers::pi) - 0.5 * std::log(det) - 0.5 * quad;
    const double value = log_density(*parse_prior("mvnormal([1, -1], [[2, 0.6], [0.6, 1]])", 2), {0.5, 0.2});
    expect_close(value, closed);
    expect_close(value, -3.2590056751322765);
  }

  expect_close(log_density(*parse_prior("lognormal(0, 1)", 1), {1.0}), -half_log_2pi);
  expect_close(log_density(*parse_prior("lognormal(0.5, 0.25)", 1), {2.0}), -0.5242380195107763);
  expect_close(log_density(*parse_prior("lognormal([-1, 0.3], [0.5, 1.5])", 2), {0.4, 3.0}), -1.8882602755833409);

  // Box: -Σ log(high - low) on the closed box, -inf outside.
  const auto box = parse_prior("uniform([-1, 0], [3, 0.5])", 2);
  const double inside = -std::log(4.0) - std::log(0.5);
  EXPECT_DOUBLE_EQ(log_density(*box, {0.0, 0.25}), inside);
  EXPECT_DOUBLE_EQ(log_density(*box, {-1.0, 0.5}), inside) << "faces belong to the box";
  EXPECT_DOUBLE_EQ(log_density(*box, {3.0, 0.0}), inside) << "faces belong to the box";
  EXPECT_EQ(log_density(*box, {std::nextafter(3.0, 4.0), 0.25}), -kInf);
  EXPECT_EQ(log_density(*box, {0.0, -1e-300}), -kInf);
}

TEST(Prior, LogDensityIsMinusInfinityOutsideSupport) {
  const auto lognormal = parse_prior("lognormal(0, 1)", 2);
  EXPECT_EQ(log_density(*lognormal, {1.0, 0.0}), -kInf);
  EXPECT_EQ(log_density(*lognormal, {-1.0, 1.0}), -kInf);
  EXPECT_FALSE(lognormal->in_support(std::vector<double>{1.0, 0.0}));
  EXPECT_TRUE(lognormal->in_support(std::vector<double>{1e-300, 1.0}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const char* spec : kAllFamilies) {
    const auto prior = parse_prior(spec, 3);
    EXPECT_FALSE(prior->in_support(std::vector<double>{nan, 1.0, 3.0})) << spec;
    EXPECT_EQ(log_density(*prior, {1.0, nan, 3.0}), -kInf) << spec;
    EXPECT_FALSE(prior->in_support(std::vector<double>{1.0, 0.25, kInf})) << spec;
  }
  const auto box = parse_prior("uniform(0, 1)", 1);
  EXPECT_TRUE(box->in_support(std::vector<double>{0.0}));
  EXPECT_TRUE(box->in_support(std::vector<double>{1.0}));
  EXPECT_FALSE(box->in_support(std::vector<double>{-1e-300}));
}

// A Gaussian with diagonal covariance is the diagonal Gaussian, through two different code paths.
TEST(Prior, MvNormalWithDiagonalCovarianceEqualsNormal) {
  const std::uint64_t seed = test::announce_seed("Prior.MvNormalDiagonal", 108);
  const auto diag = parse_prior("normal([1, -2, 0], [0.5, 3, 1])", 3);
  const auto full = parse_prior("mvnormal([1, -2, 0], [[0.25, 0, 0], [0, 9, 0], [0, 0, 1]])", 3);
  std::vector<double> g1(3), g2(3);
  for (std::uint64_t i = 0; i < 100; ++i) {
    const std::vector<double> theta = draw(*diag, seed, i);
    EXPECT_NEAR(full->log_density(theta), diag->log_density(theta), 1e-13 * (1 + std::abs(diag->log_density(theta))));
    diag->grad_log_density(theta, g1);
    full->grad_log_density(theta, g2);
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(g2[static_cast<std::size_t>(j)], g1[static_cast<std::size_t>(j)], 1e-13 * (1 + std::abs(g1[static_cast<std::size_t>(j)])));
    // L = diag(sd): the same draws up to rounding (the compiler may fuse mean + sd·z differently).
    const std::vector<double> full_theta = draw(*full, seed, i);
    for (std::size_t j = 0; j < 3; ++j) EXPECT_NEAR(full_theta[j], theta[j], 1e-15 * (1 + std::abs(theta[j])));
  }
}

// ∫ π = 1 by the trapezoid rule. For a smooth density decaying to ~0 at both ends the rule
// converges faster than any power of h, so 1e-10 is loose; the box's jumps cost at most one
// cell's mass at each face, so its tolerance is 2·h·density.
double trapezoid_1d(const Prior& prior, double a, double b, int cells, bool log_scale = false) {
  const double h = (b - a) / cells;
  double sum = 0.0;
  for (int i = 0; i <= cells; ++i) {
    const double t = a + h * i;
    // Integrating over u = log θ: ∫ π(θ) dθ = ∫ π(e^u) e^u du.
    const double theta = log_scale ? std::exp(t) : t;
    const double f = std::exp(prior.log_density(std::vector<double>{theta})) * (log_scale ? theta : 1.0);
    sum += (i == 0 || i == cells) ? 0.5 * f : f;
  }
  return sum * h;
}

TEST(Prior, OneDimensionalDensitiesIntegrateToOne) {
  const double normal = trapezoid_1d(*parse_prior("normal(0.3, 0.7)", 1), 0.3 - 12 * 0.7, 0.3 + 12 * 0.7, 4000);
  const double mvnormal = trapezoid_1d(*parse_prior("mvnormal(0.5, [[2.25]])", 1), 0.5 - 18, 0.5 + 18, 4000);
  const double lognormal = trapezoid_1d(*parse_prior("lognormal(0.2, 0.5)", 1), 0.2 - 6, 0.2 + 6, 4000, true);
  const int cells = 30000;
  const double h = 3.0 / cells;
  const double box = trapezoid_1d(*parse_prior("uniform(-0.5, 1.5)", 1), -1.0, 2.0, cells);
  std::printf("∫π - 1: normal %.2e, mvnormal %.2e, lognormal %.2e, uniform %.2e (tolerance %.1e)\n", normal - 1,
              mvnormal - 1, lognormal - 1, box - 1, 2 * h * 0.5);
  EXPECT_NEAR(normal, 1.0, 1e-10);
  EXPECT_NEAR(mvnormal, 1.0, 1e-10);
  EXPECT_NEAR(lognormal, 1.0, 1e-10);
  EXPECT_NEAR(box, 1.0, 2 * h * 0.5);
}

// A correlated 2-D Gaussian on a 401² grid over ±9 sd per axis: the product trapezoid rule is
// again spectrally accurate for a smooth density negligible on the grid's edge.
TEST(Prior, TwoDimensionalMvNormalIntegratesToOne) {
  const auto prior = parse_prior("mvnormal([1, -1], [[2, 0.9], [0.9, 1]])", 2);
  const int cells = 400;
  const double ax = 1 - 9 * std::sqrt(2.0), bx = 1 + 9 * std::sqrt(2.0), ay = -10, by = 8;
  const double hx = (bx - ax) / cells, hy = (by - ay) / cells;
  double sum = 0.0;
  std::vector<double> theta(2);
  for (int i = 0; i <= cells; ++i) {
    for (int j = 0; j <= cells; ++j) {
      theta[0] = ax + hx * i;
      theta[1] = ay + hy * j;
      const double w = ((i == 0 || i == cells) ? 0.5 : 1.0) * ((j == 0 || j == cells) ? 0.5 : 1.0);
      sum += w * std::exp(prior->log_density(theta));
    }
  }
  const double integral = sum * hx * hy;
  std::printf("2-D mvnormal: ∫π - 1 = %.2e\n", integral - 1);
  EXPECT_NEAR(integral, 1.0, 1e-8);
}

// ---- Gradient ---------------------------------------------------------------------------------

// Central differences with h_i = 1e-5·max(1, |θ_i|): truncation error ~h²·|f'''|/6 and rounding
// ~ε|f|/h are both far below the tolerance 1e-6 relative with an absolute floor of 1e-8.
TEST(Prior, GradientMatchesCentralDifferences) {
  const std::uint64_t seed = test::announce_seed("Prior.Gradient", 109);
  constexpr double rel_tol = 1e-6, abs_floor = 1e-8;
  for (const char* spec : kAllFamilies) {
    const auto prior = parse_prior(spec, 3);
    double worst = 0.0;
    int checked = 0;
    std::vector<double> grad(3);
    for (std::uint64_t index = 0; index < 50; ++index) {
      std::vector<double> theta = draw(*prior, seed, index);
      prior->grad_log_density(theta, grad);
      for (std::size_t j = 0; j < 3; ++j) {
        const double h = 1e-5 * std::max(1.0, std::abs(theta[j]));
        std::vector<double> plus = theta, minus = theta;
        plus[j] += h;
        minus[j] -= h;
        if (!prior->in_support(plus) || !prior->in_support(minus)) continue;  // draw within h of a face
        const double fd = (prior->log_density(plus) - prior->log_density(minus)) / (2 * h);
        const double error = std::abs(grad[j] - fd) / (rel_tol * std::max(std::abs(grad[j]), std::abs(fd)) + abs_floor);
        worst = std::max(worst, error);
        ++checked;
        EXPECT_LE(error, 1.0) << spec << " at draw " << index << ", component " << j << ": analytic " << grad[j]
                              << ", finite difference " << fd;
      }
    }
    std::printf("%-75s worst gradient error %.3f of tolerance over %d components\n", spec, worst, checked);
    EXPECT_GT(checked, 140) << spec;
  }
}

TEST(Prior, BoxGradientIsZero) {
  const auto box = parse_prior("uniform([-1, 0], [3, 0.5])", 2);
  std::vector<double> grad = {7.0, 7.0};
  box->grad_log_density(std::vector<double>{0.0, 0.25}, grad);
  EXPECT_EQ(grad, (std::vector<double>{0.0, 0.0}));
}

// ---- Bounds and metadata ------------------------------------------------------------------------

TEST(Prior, BoundsKindAndDim) {
  const auto box = parse_prior("uniform([-1, 0], [3, 0.5])", 2);
  EXPECT_EQ(box->kind(), "uniform");
  EXPECT_EQ(box->dim(), 2);
  EXPECT_EQ(box->lower_bounds(), Eigen::Vector2d(-1, 0));
  EXPECT_EQ(box->upper_bounds(), Eigen::Vector2d(3, 0.5));
  for (const char* spec : {"normal(0, 1)", "mvnormal(0, [[1, 0], [0, 1]])"}) {
    const auto prior = parse_prior(spec, 2);
    EXPECT_EQ(prior->lower_bounds(), Eigen::Vector2d::Constant(-kInf)) << spec;
    EXPECT_EQ(prior->upper_bounds(), Eigen::Vector2d::Constant(kInf)) << spec;
  }
  const auto lognormal = parse_prior("lognormal(0, 1)", 2);
  EXPECT_EQ(lognormal->kind(), "lognormal");
  EXPECT_EQ(lognormal->lower_bounds(), Eigen::Vector2d::Zero());
  EXPECT_EQ(lognormal->upper_bounds(), Eigen::Vector2d::Constant(kInf));
  EXPECT_EQ(parse_prior("normal(0, 1)", 1)->kind(), "normal");
  EXPECT_EQ(parse_prior("mvnormal(0, [[1]])", 1)->kind(), "mvnormal");
}

// ---- Spec round trip ----------------------------------------------------------------------------

std::string shortest(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// parse(spec()) is the same prior: the same canonical text, bounds, and bit-identical densities,
// gradients and draws.
void expect_round_trip(const std::string& spec, int dim, const std::string& canonical) {
  SCOPED_TRACE(spec);
  const auto prior = parse_prior(spec, dim);
  EXPECT_EQ(prior->spec(), canonical);
  const auto again = parse_prior(prior->spec(), dim);
  EXPECT_EQ(again->spec(), prior->spec());
  EXPECT_EQ(again->kind(), prior->kind());
  EXPECT_EQ(again->lower_bounds(), prior->lower_bounds());
  EXPECT_EQ(again->upper_bounds(), prior->upper_bounds());
  std::vector<double> g1(static_cast<std::size_t>(dim)), g2(static_cast<std::size_t>(dim));
  for (std::uint64_t index = 0; index < 10; ++index) {
    const std::vector<double> theta = draw(*prior, 110, index);
    EXPECT_EQ(draw(*again, 110, index), theta);
    EXPECT_EQ(again->log_density(theta), prior->log_density(theta));
    if (prior->in_support(theta)) {
      prior->grad_log_density(theta, g1);
      again->grad_log_density(theta, g2);
      EXPECT_EQ(g1, g2);
    }
  }
}

TEST(Prior, SpecRoundTripsExactlyWithAwkwardNumbers) {
  const double third = 1.0 / 3.0;
  // 17 significant digits, as another tool might write them; the canonical form is the shortest.
  const std::string third17 = "0.33333333333333331";
  EXPECT_EQ(parse_prior("uniform(" + third17 + ", 1)", 1)->lower_bounds()[0], third);
  EXPECT_EQ(shortest(third), "0.3333333333333333");

  expect_round_trip("uniform([0.1, -1e-300], [" + third17 + ", 1e300])", 2,
                    "uniform([0.1, -1e-300], [0.3333333333333333, 1e+300])");
  expect_round_trip("normal([0.1, 0.1], " + third17 + ")", 2, "normal(0.1, 0.3333333333333333)");
  expect_round_trip("normal([-1e-300, 0.1, 1e-3], [" + third17 + ", 2.5, 7])", 3,
                    "normal([-1e-300, 0.1, 0.001], [0.3333333333333333, 2.5, 7])");
  expect_round_trip("mvnormal([-1e-300, 0.1], [[0.1, " + third17 + "], [" + third17 + ", 2]])", 2,
                    "mvnormal([-1e-300, 0.1], [[0.1, 0.3333333333333333], [0.3333333333333333, 2]])");
  expect_round_trip("mvnormal(-0.5, [[1]])", 1, "mvnormal(-0.5, [[1]])");
  expect_round_trip("lognormal([-1e-300, 0.1, " + third17 + "], 0.1)", 3,
                    "lognormal([-1e-300, 0.1, 0.3333333333333333], 0.1)");
  // Signed zero and the smallest subnormal survive too.
  expect_round_trip("normal([-0, 0], 1)", 2, "normal([-0, 0], 1)");
  expect_round_trip("uniform(5e-324, 1)", 1, "uniform(5e-324, 1)");
}

TEST(Prior, SpecToleratesWhitespaceAndNumberFormats) {
  EXPECT_EQ(parse_prior(" \tnormal ( [ 0 ,1 ] ,\n2 )  ", 2)->spec(), "normal([0, 1], 2)");
  EXPECT_EQ(parse_prior("uniform(-5E-1,1e0)", 1)->spec(), "uniform(-0.5, 1)");
  EXPECT_EQ(parse_prior("uniform(.25, 1.)", 1)->spec(), "uniform(0.25, 1)");
  EXPECT_EQ(parse_prior("mvnormal( [1,2] , [ [ 1 , 0 ] , [ 0 , 1 ] ] )", 2)->spec(),
            "mvnormal([1, 2], [[1, 0], [0, 1]])");
  // Compact form: equal components print as one broadcast scalar.
  EXPECT_EQ(parse_prior("lognormal([1, 1, 1], [0.5, 0.5, 0.5])", 3)->spec(), "lognormal(1, 0.5)");
  EXPECT_EQ(parse_prior("uniform(-1, [1, 2])", 2)->spec(), "uniform(-1, [1, 2])");
}

// ---- Errors ---------------------------------------------------------------------------------------

std::string error_of(const std::string& spec, int dim) {
  try {
    parse_prior(spec, dim);
  } catch (const PriorSpecError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    if (spec.find_first_of("\n\t\r") == std::string::npos) {
      EXPECT_THAT(message, HasSubstr("prior \"" + spec + "\": ")) << "names the spec";
    }
    return message;
  }
  ADD_FAILURE() << "no PriorSpecError for \"" << spec << "\" with dim " << dim;
  return "";
}

TEST(PriorSpecError, WrongArgumentCount) {
  EXPECT_EQ(error_of("uniform(-1)", 2),
            "prior \"uniform(-1)\": uniform takes 2 arguments (low, high), got 1; example: uniform(-1, 1)");
  EXPECT_THAT(error_of("normal(0, 1, 2)", 2), HasSubstr("normal takes 2 arguments (mean, sd), got 3"));
  EXPECT_THAT(error_of("lognormal()", 2), HasSubstr("lognormal takes 2 arguments (mu, sigma), got 0"));
  EXPECT_THAT(error_of("mvnormal([0, 0])", 2), HasSubstr("example: mvnormal([0, 0], [[1, 0.5], [0.5, 1]])"));
}

TEST(PriorSpecError, ListLengthDisagreesWithDimension) {
  EXPECT_THAT(error_of("normal([0,0,0], 1)", 2), HasSubstr("mean has 3 values but the simulator has 2 parameters"));
  EXPECT_THAT(error_of("uniform(0, [1, 2])", 3), HasSubstr("high has 2 values but the simulator has 3 parameters"));
  EXPECT_THAT(error_of("lognormal(0, [1, 2])", 1),
              HasSubstr("sigma has 2 values but the simulator has 1 parameter; give 1 value, or one number for all"));
  EXPECT_THAT(error_of("mvnormal([0, 0], [[1, 0], [0, 1]])", 3),
              HasSubstr("mean has 2 values but the simulator has 3 parameters"));
  EXPECT_THAT(error_of("mvnormal(0, [[1, 0], [0, 1]])", 3),
              HasSubstr("covariance has 2 rows but the simulator has 3 parameters"));
  EXPECT_THAT(error_of("mvnormal(0, [[1, 0], [0]])", 2),
              HasSubstr("covariance row 1 has 1 value but the simulator has 2 parameters; write it as 2 rows of 2 "
                        "numbers, e.g. [[1, 0], [0, 1]]"));
  EXPECT_THAT(error_of("mvnormal(0, 1)", 3), HasSubstr("e.g. [[1, 0, 0], [0, 1, 0], [0, 0, 1]]"));
}

TEST(PriorSpecError, UnknownFamily) {
  EXPECT_THAT(error_of("gauss(0, 1)", 2),
              HasSubstr("unknown prior family 'gauss'; use uniform, normal, mvnormal or lognormal"));
  EXPECT_THAT(error_of("Normal(0, 1)", 2), HasSubstr("unknown prior family 'Normal'"));
}

TEST(PriorSpecError, InvalidParameters) {
  EXPECT_THAT(error_of("uniform(1, 0)", 2), HasSubstr("uniform needs low < high, but low = 1 >= high = 0"));
  EXPECT_THAT(error_of("uniform([0, 2], [1, 2])", 2), HasSubstr("low[1] = 2 >= high[1] = 2"));
  EXPECT_THAT(error_of("uniform(-1e308, 1e308)", 1), HasSubstr("the width high - low overflows a double"));
  EXPECT_THAT(error_of("normal(0, 0)", 2), HasSubstr("normal needs sd > 0, but sd = 0"));
  EXPECT_THAT(error_of("normal(0, [1, -2])", 2), HasSubstr("normal needs sd > 0, but sd[1] = -2"));
  EXPECT_THAT(error_of("lognormal(0, -0.5)", 2), HasSubstr("lognormal needs sigma > 0, but sigma = -0.5"));
  EXPECT_THAT(error_of("normal(nan, 1)", 1), HasSubstr("number 'nan' at column 8 is not finite"));
  EXPECT_THAT(error_of("uniform(-inf, 1)", 1), HasSubstr("is not finite"));
  EXPECT_THAT(error_of("normal(0, 1e999)", 1), HasSubstr("number '1e999' at column 11 is out of the range of a double"));
}

TEST(PriorSpecError, CovarianceNotSymmetricOrNotPositiveDefinite) {
  EXPECT_THAT(error_of("mvnormal([0,0], [[1, 0.5], [0.4, 1]])", 2),
              HasSubstr("covariance is not symmetric: covariance[0][1] = 0.5 but covariance[1][0] = 0.4"));
  EXPECT_THAT(error_of("mvnormal([0,0], [[1, 2], [2, 1]])", 2), HasSubstr("covariance is not positive definite"));
  EXPECT_THAT(error_of("mvnormal([0,0], [[1, 1], [1, 1]])", 2), HasSubstr("not positive definite"))
      << "singular";
  EXPECT_THAT(error_of("mvnormal([0,0], [[-1, 0], [0, 1]])", 2), HasSubstr("not positive definite"));
  // Rank one up to rounding: whatever sign the last pivot rounds to, the matrix is rejected.
  // With correlation 1 - 2^-52 Eigen's LLT itself succeeds (pivot 1 - ρ² ≈ 4e-16 > 0), so this
  // exercises the numerical-singularity check; correlation 1 - 1e-6 is fine and accepted.
  {
    const double rho = 1.0 - 0x1.0p-52;
    Eigen::Matrix2d nearly_singular;
    nearly_singular << 1, rho, rho, 1;
    ASSERT_EQ(nearly_singular.llt().info(), Eigen::Success);
    EXPECT_THAT(error_of("mvnormal(0, [[1, " + shortest(rho) + "], [" + shortest(rho) + ", 1]])", 2),
                HasSubstr("numerically singular"));
    EXPECT_NO_THROW(parse_prior("mvnormal(0, [[1, 0.999999], [0.999999, 1]])", 2));
  }
  EXPECT_THAT(error_of("mvnormal([0,0], [[0.1, 0.30000000000000004], [0.30000000000000004, 0.9000000000000001]])", 2),
              HasSubstr("not positive definite"));
  EXPECT_THAT(error_of("mvnormal([0,0], 1)", 2), HasSubstr("covariance must be a 2x2 matrix, got the number 1"));
  EXPECT_THAT(error_of("mvnormal([0,0], [1, 0])", 2), HasSubstr("covariance row 0 (column 18) is a number"));
}

TEST(PriorSpecError, MessageStaysOnOneLineForMultiLineSpecs) {
  const std::string message = error_of("normal(\n  [0, 1],\n  2\n) x", 2);
  EXPECT_THAT(message, HasSubstr("prior \"normal(\\n  [0, 1],\\n  2\\n) x\": unexpected trailing text 'x'"));
}

TEST(PriorSpecError, Syntax) {
  EXPECT_THAT(error_of("", 2), HasSubstr("the spec is empty"));
  EXPECT_THAT(error_of("   ", 2), HasSubstr("the spec is empty"));
  EXPECT_THAT(error_of("normal(0, 1) x", 2),
              HasSubstr("unexpected trailing text 'x' at column 14; the spec must end after its ')'"));
  EXPECT_THAT(error_of("normal(0, 1))", 2), HasSubstr("unexpected trailing text ')'"));
  EXPECT_THAT(error_of("normal(0, 1", 2), HasSubstr("expected ',' or ')' at column 12 (end of spec)"));
  EXPECT_THAT(error_of("normal(0; 1)", 2), HasSubstr("expected ',' or ')' at column 9, found ';'"));
  EXPECT_THAT(error_of("normal 0, 1", 2), HasSubstr("expected '(' after 'normal'"));
  EXPECT_THAT(error_of("normal(0, abc)", 2), HasSubstr("expected a number or a '[' list at column 11, found 'a'"));
  EXPECT_THAT(error_of("normal(+1, 1)", 2), HasSubstr("expected a number"));
  EXPECT_THAT(error_of("normal(1.5x, 1)", 2), HasSubstr("expected ',' or ')' at column 11, found 'x'"));
  EXPECT_THAT(error_of("normal([0, 1, 1)", 2), HasSubstr("expected ',' or ']'"));
  EXPECT_THAT(error_of("uniform([], 1)", 2), HasSubstr("empty list"));
  EXPECT_THAT(error_of("normal([[0]], 1)", 1), HasSubstr("mean must be a number or a list of numbers, but has a nested list"));
  EXPECT_THAT(error_of("(0, 1)", 1), HasSubstr("expected a prior family name"));
  EXPECT_THAT(error_of("normal(0, [[[1]]])", 1), HasSubstr("lists nest at most two deep"));
  // A hostile spec: deep nesting is refused after three levels, not by running out of stack.
  EXPECT_THAT(error_of("normal(" + std::string(100000, '[') + ")", 1), HasSubstr("lists nest at most two deep"));
  // A pasted Unicode minus sign is shown whole, not as a stray byte.
  EXPECT_THAT(error_of("normal(\u2212" "1, 1)", 1), HasSubstr("expected a number or a '[' list at column 8, found '\u2212'"));
  EXPECT_THAT(error_of("normal(0, 1)", 0), HasSubstr("the simulator has 0 parameters"));
  EXPECT_THAT(error_of("normal(0, 1)", 0), Not(HasSubstr("\n")));
}

// ---- Hot path ---------------------------------------------------------------------------------------

TEST(Prior, HotPathCallsDoNotAllocate) {
  const std::uint64_t seed = test::announce_seed("Prior.NoAllocation", 111);
  for (const char* spec : kAllFamilies) {
    const auto prior = parse_prior(spec, 3);
    double theta[3] = {0, 0, 0}, grad[3] = {0, 0, 0};
    double checksum = 0.0;
    const long before = g_allocations.load();
    for (std::uint64_t index = 0; index < 1000; ++index) {
      CounterRng rng(seed, Stream::prior, index);
      prior->sample(rng, theta);
      if (prior->in_support(theta)) {
        checksum += prior->log_density(theta);
        prior->grad_log_density(theta, grad);
        checksum += grad[0];
      }
    }
    const long after = g_allocations.load();
    EXPECT_EQ(after - before, 0) << spec;
    EXPECT_TRUE(std::isfinite(checksum)) << spec;
  }
}

TEST(Prior, SpanOfWrongSizeIsRejected) {
  const auto prior = parse_prior("normal(0, 1)", 2);
  std::vector<double> three(3);
  CounterRng rng(1, Stream::test, 0);
  EXPECT_THROW(prior->sample(rng, three), std::invalid_argument);
  EXPECT_THROW(prior->log_density(three), std::invalid_argument);
}

}  // namespace
}  // namespace fsbi
