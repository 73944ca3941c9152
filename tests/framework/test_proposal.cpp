// Tests of the sequential proposals (fsbi/proposal.hpp) and their HDF5 persistence
// (framework/src/proposal_file.hpp): scores against finite differences of the log densities
// (also far in the tails, where the densities underflow), normalisation by quadrature, EM recovery
// and determinism, sampling against the density, the change of variables of ProposalPrior, the
// simulation engine drawing from a ProposalPrior, file round trips and error messages. Each check
// prints its worst error.
//
// Finite differences: five-point central stencil in float64, step h = 1e-4·max(1, |u|), error
// |fd − exact| / max(|exact|, 1e-3) (relative with an absolute floor); tolerance 1e-6, well above
// truncation (~h⁴·f⁽⁵⁾/30: large only where two far components trade places, f⁽⁵⁾ ~ r·Δslope⁵)
// plus rounding (~ε·|f|/h ≤ 1e-9 relative even where |log q| is in the thousands).
// Monte-Carlo checks allow 5 standard errors; seeds are fixed and printed.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/proposal.hpp"

#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/random.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/transform.hpp"
#include "h5/h5.hpp"
#include "proposal_file.hpp"
#include "test_support.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <Eigen/LU>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSigmas = 5.0;
constexpr double kFdTolerance = 1e-6;
constexpr double kFdFloor = 1e-3;

using LogDensity = std::function<Eigen::RowVectorXd(const Eigen::MatrixXd&)>;

double step(double u) { return 1e-4 * std::max(1.0, std::abs(u)); }

// Five-point central differences of a per-column scalar f (1 × n) with respect to every row of u.
Eigen::MatrixXd fd_gradient(const LogDensity& f, const Eigen::MatrixXd& u) {
  Eigen::MatrixXd g(u.rows(), u.cols());
  for (Eigen::Index i = 0; i < u.rows(); ++i) {
    const Eigen::ArrayXXd h = u.row(i).unaryExpr([](double v) { return step(v); }).array();
    const auto at = [&](double k) -> Eigen::ArrayXXd {
      Eigen::MatrixXd v = u;
      v.row(i).array() += k * h;
      return f(v).array();
    };
    g.row(i) = ((at(-2.0) - 8.0 * at(-1.0) + 8.0 * at(1.0) - at(2.0)) / (12.0 * h)).matrix();
  }
  return g;
}

// Worst |fd − exact| / max(|exact|, floor), printed with its location.
double worst_error(const std::string& what, const Eigen::MatrixXd& fd, const Eigen::MatrixXd& exact,
                   const Eigen::MatrixXd& u) {
  double w = 0.0;
  Eigen::Index wi = 0, wj = 0;
  for (Eigen::Index j = 0; j < fd.cols(); ++j) {
    for (Eigen::Index i = 0; i < fd.rows(); ++i) {
      const double e = std::abs(fd(i, j) - exact(i, j)) / std::max(std::abs(exact(i, j)), kFdFloor);
      if (!(e <= w)) {
        w = e;
        wi = i;
        wj = j;
      }
    }
  }
  std::printf("[worst] %-58s %.2e (row %ld, |u| = %.1f)\n", what.c_str(), w, static_cast<long>(wi),
              u.col(wj).norm());
  return w;
}

// A K-component mixture in d dimensions: means spread over [-2.5, 2.5], covariances A·Aᵀ + 0.05·I
// with A's entries ~ N(0, scale²/d) (so the spread is about `scale` per coordinate).
GaussianMixture random_mixture(int d, int K, std::uint64_t seed, double scale = 0.6) {
  CounterRng rng(seed, Stream::test, 1000);
  Eigen::VectorXd w(K);
  for (int k = 0; k < K; ++k) w[k] = 0.5 + rng.uniform();
  w /= w.sum();
  Eigen::MatrixXd m(d, K);
  for (int k = 0; k < K; ++k)
    for (int i = 0; i < d; ++i) m(i, k) = rng.uniform(-2.5, 2.5);
  std::vector<Eigen::MatrixXd> c;
  for (int k = 0; k < K; ++k) {
    Eigen::MatrixXd a(d, d);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) a(i, j) = rng.normal() * scale / std::sqrt(static_cast<double>(d));
    c.push_back(a * a.transpose() + 0.05 * Eigen::MatrixXd::Identity(d, d));
  }
  return GaussianMixture(w, m, c);
}

// 25 points ~ N(0, 1.5²) per coordinate, then tail points with |u| ≈ 20 (and 12): ±20 along the
// first and last axes, ±20 along the diagonal, and a mixed-sign corner.
Eigen::MatrixXd test_points(int d, std::uint64_t seed) {
  constexpr int kRandom = 25;
  std::vector<Eigen::VectorXd> cols;
  CounterRng rng(seed, Stream::test, 2000);
  for (int j = 0; j < kRandom; ++j) {
    Eigen::VectorXd v(d);
    for (int i = 0; i < d; ++i) v[i] = 1.5 * rng.normal();
    cols.push_back(v);
  }
  for (const double r : {20.0, -20.0, 12.0, -12.0}) {
    Eigen::VectorXd a = Eigen::VectorXd::Zero(d);
    a[0] = r;
    cols.push_back(a);
    Eigen::VectorXd b = Eigen::VectorXd::Zero(d);
    b[d - 1] = -0.7 * r;
    b[0] += 0.3;
    cols.push_back(b);
    cols.push_back(Eigen::VectorXd::Constant(d, r / std::sqrt(static_cast<double>(d))));
  }
  Eigen::VectorXd corner(d);
  for (int i = 0; i < d; ++i) corner[i] = (i % 2 ? -1.0 : 1.0) * 20.0 / std::sqrt(static_cast<double>(d));
  cols.push_back(corner);
  Eigen::MatrixXd u(d, static_cast<Eigen::Index>(cols.size()));
  for (std::size_t j = 0; j < cols.size(); ++j) u.col(static_cast<Eigen::Index>(j)) = cols[j];
  return u;
}

Eigen::MatrixXd column(std::initializer_list<double> values) {
  Eigen::MatrixXd m(static_cast<Eigen::Index>(values.size()), 1);
  Eigen::Index i = 0;
  for (double v : values) m(i++, 0) = v;
  return m;
}

std::string label(const std::string& spec, int d) { return spec + ", d = " + std::to_string(d); }

std::shared_ptr<const Prior> prior_of(const std::string& spec, int d) { return parse_prior(spec, d); }

// The prior families of the score tests: a box, a Gaussian and a log-normal.
const std::vector<std::string> kPriorSpecs = {"uniform(-1, 1)", "normal(0.5, 2)", "lognormal(-0.5, 0.7)"};

// ---- GaussianMixture --------------------------------------------------------------------------

TEST(GaussianMixture, GradientMatchesFiniteDifferences) {
  const std::uint64_t seed = test::announce_seed("Proposal.MixtureGradient", 401);
  for (const int d : {1, 2, 5}) {
    const GaussianMixture g = random_mixture(d, d == 1 ? 3 : 4, seed + static_cast<std::uint64_t>(d), 0.5);
    const Eigen::MatrixXd u = test_points(d, seed);
    const Eigen::RowVectorXd ld = g.log_density(u);
    ASSERT_TRUE(ld.allFinite()) << "d = " << d;
    // Where a naive Σ w_k N(u; μ_k, Σ_k) underflows to 0, the log density is still finite.
    std::printf("d = %d: smallest log density at the test points %.1f (exp underflows below -745)\n", d,
                ld.minCoeff());
    EXPECT_LT(ld.minCoeff(), -745.0) << "the tail points should be beyond double's underflow (d = " << d << ")";
    const Eigen::MatrixXd exact = g.grad_log_density(u);
    ASSERT_TRUE(exact.allFinite());
    const Eigen::MatrixXd fd = fd_gradient([&](const Eigen::MatrixXd& v) { return g.log_density(v); }, u);
    EXPECT_LE(worst_error("GaussianMixture ∇ log g, d = " + std::to_string(d), fd, exact, u), kFdTolerance);
    Eigen::RowVectorXd ld2;
    Eigen::MatrixXd g2;
    g.evaluate(u, &ld2, &g2);
    EXPECT_EQ(ld2, ld);
    EXPECT_EQ(g2, exact);
  }
}

TEST(GaussianMixture, SingleComponentClosedForm) {
  // One component: log N(u; μ, Σ) and −Σ⁻¹(u − μ), to 1e-12.
  Eigen::MatrixXd cov(2, 2);
  cov << 2.0, 0.6, 0.6, 0.5;
  const GaussianMixture g(Eigen::VectorXd::Ones(1), column({0.3, -1.0}), {cov});
  const Eigen::MatrixXd u = column({1.7, 0.4});
  const Eigen::VectorXd dev = u.col(0) - column({0.3, -1.0}).col(0);
  const double expected = -std::log(2.0 * std::numbers::pi) - 0.5 * std::log(cov.determinant()) -
                          0.5 * dev.dot(cov.inverse() * dev);
  EXPECT_NEAR(g.log_density(u)[0], expected, 1e-12);
  EXPECT_LE((g.grad_log_density(u).col(0) + cov.inverse() * dev).norm(), 1e-12);
}

TEST(GaussianMixture, IntegratesToOne) {
  const std::uint64_t seed = test::announce_seed("Proposal.MixtureIntegral", 402);
  const GaussianMixture g = random_mixture(2, 3, seed, 0.6);
  // Midpoint rule on [-14, 14]² with step 0.01 (means in [-2.5, 2.5], every sd < 1.5: the box
  // holds all but ~e^-30 of the mass, and the rule is spectrally accurate for Gaussians).
  constexpr double kL = 14.0, kH = 0.01;
  const auto n = static_cast<Eigen::Index>(std::lround(2 * kL / kH));
  Eigen::MatrixXd row(2, n);
  for (Eigen::Index j = 0; j < n; ++j) row(1, j) = -kL + (static_cast<double>(j) + 0.5) * kH;
  double mass = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    row.row(0).setConstant(-kL + (static_cast<double>(i) + 0.5) * kH);
    mass += g.log_density(row).array().exp().sum();
  }
  mass *= kH * kH;
  std::printf("[worst] 2-d mixture ∫ g du − 1 = %.2e\n", mass - 1.0);
  EXPECT_NEAR(mass, 1.0, 1e-4);
}

TEST(GaussianMixture, SampleMatchesMomentsAndDrawCount) {
  const std::uint64_t seed = test::announce_seed("Proposal.MixtureSample", 403);
  const GaussianMixture g = random_mixture(2, 3, seed, 0.6);
  constexpr int kN = 50000;
  Eigen::MatrixXd u(2, kN);
  for (int k = 0; k < kN; ++k) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(k));
    g.sample(rng, std::span<double>(u.col(k).data(), 2));
    // 1 uniform (one word) + 2 normals (one Box–Muller pair: two words): the next word is the 4th.
    CounterRng ref(seed, Stream::test, static_cast<std::uint64_t>(k));
    for (int w = 0; w < 3; ++w) ref.next_u64();
    ASSERT_EQ(rng.next_u64(), ref.next_u64()) << "draw " << k;
  }
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(2);
  Eigen::MatrixXd second = Eigen::MatrixXd::Zero(2, 2);
  for (int k = 0; k < g.components(); ++k) {
    mean += g.weights[k] * g.means.col(k);
    second += g.weights[k] * (g.covariances[static_cast<std::size_t>(k)] + g.means.col(k) * g.means.col(k).transpose());
  }
  const Eigen::MatrixXd cov = second - mean * mean.transpose();
  const Eigen::VectorXd m = u.rowwise().mean();
  double worst_z = 0.0;
  for (int i = 0; i < 2; ++i) {
    const double z = (m[i] - mean[i]) / std::sqrt(cov(i, i) / kN);
    worst_z = std::max(worst_z, std::abs(z));
    EXPECT_LE(std::abs(z), kSigmas) << "coordinate " << i;
  }
  std::printf("[worst] mixture sample mean off by %.2f SE\n", worst_z);
}

TEST(GaussianMixture, Widened) {
  const GaussianMixture g = random_mixture(3, 2, 7);
  const GaussianMixture w = g.widened(1.5);
  EXPECT_EQ(w.weights, g.weights);
  EXPECT_EQ(w.means, g.means);
  for (int k = 0; k < 2; ++k) {
    EXPECT_LE((w.covariances[static_cast<std::size_t>(k)] - 2.25 * g.covariances[static_cast<std::size_t>(k)]).norm(),
              1e-14);
  }
  // At a mean of a one-component mixture, widening by f lowers log g by d·log f.
  const GaussianMixture one(Eigen::VectorXd::Ones(1), g.means.col(0), {g.covariances[0]});
  EXPECT_NEAR(one.log_density(g.means.col(0))[0] - one.widened(2.0).log_density(g.means.col(0))[0],
              3.0 * std::log(2.0), 1e-12);
  EXPECT_THROW((void)g.widened(0.0), ProposalError);
  EXPECT_THROW((void)g.widened(std::numeric_limits<double>::quiet_NaN()), ProposalError);
}

TEST(GaussianMixture, ValidationMessages) {
  const auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const ProposalError& e) {
      return e.what();
    }
    return "(no ProposalError)";
  };
  Eigen::MatrixXd not_pd(2, 2);
  not_pd << 1.0, 2.0, 2.0, 1.0;
  const std::string spd = message([&] { (void)GaussianMixture(Eigen::VectorXd::Ones(1), Eigen::MatrixXd::Zero(2, 1), {not_pd}); });
  std::printf("non-SPD: %s\n", spd.c_str());
  EXPECT_THAT(spd, AllOf(HasSubstr("covariance 0 is not positive definite"), HasSubstr("[[1, 2], [2, 1]]")));

  Eigen::MatrixXd asym(2, 2);
  asym << 1.0, 0.2, 0.3, 1.0;
  EXPECT_THAT(message([&] { (void)GaussianMixture(Eigen::VectorXd::Ones(1), Eigen::MatrixXd::Zero(2, 1), {asym}); }),
              HasSubstr("covariance 0 is not symmetric"));

  const Eigen::MatrixXd id = Eigen::MatrixXd::Identity(2, 2);
  EXPECT_THAT(message([&] { (void)GaussianMixture(Eigen::Vector2d(0.5, 0.4), Eigen::MatrixXd::Zero(2, 2), {id, id}); }),
              HasSubstr("the weights sum to 0.9"));
  EXPECT_THAT(message([&] { (void)GaussianMixture(Eigen::Vector2d(1.5, -0.5), Eigen::MatrixXd::Zero(2, 2), {id, id}); }),
              HasSubstr("weight 1 is -0.5"));
  EXPECT_THAT(message([&] { (void)GaussianMixture(Eigen::VectorXd::Ones(1), Eigen::MatrixXd::Zero(2, 1), {id, id}); }),
              HasSubstr("1 weights, 1 mean columns and 2 covariances"));
  EXPECT_THAT(message([&] { GaussianMixture g; (void)g.log_density(Eigen::MatrixXd::Zero(2, 1)); }),
              HasSubstr("not finalized"));

  // Weights within 1e-9 of summing to 1 are renormalised, and finalize() is idempotent bit for bit.
  GaussianMixture g(Eigen::Vector2d(0.3 + 4e-10, 0.7), Eigen::MatrixXd::Zero(2, 2), {id, id});
  EXPECT_NEAR(g.weights.sum(), 1.0, 4 * std::numeric_limits<double>::epsilon());
  const Eigen::VectorXd before = g.weights;
  g.finalize();
  EXPECT_EQ(std::bit_cast<std::uint64_t>(g.weights[0]), std::bit_cast<std::uint64_t>(before[0]));
  EXPECT_EQ(std::bit_cast<std::uint64_t>(g.weights[1]), std::bit_cast<std::uint64_t>(before[1]));
}

// ---- EM ---------------------------------------------------------------------------------------

GaussianMixture known_mixture() {
  Eigen::MatrixXd m(2, 2);
  m << -2.0, 1.5, 0.5, -1.0;
  Eigen::MatrixXd c1(2, 2), c2(2, 2);
  c1 << 0.6, 0.25, 0.25, 0.8;
  c2 << 1.0, -0.4, -0.4, 0.5;
  return GaussianMixture(Eigen::Vector2d(0.35, 0.65), m, {c1, c2});
}

Eigen::MatrixXd draws(const GaussianMixture& g, int n, std::uint64_t seed) {
  Eigen::MatrixXd u(g.dim(), n);
  for (int k = 0; k < n; ++k) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(k));
    g.sample(rng, std::span<double>(u.col(k).data(), static_cast<std::size_t>(g.dim())));
  }
  return u;
}

TEST(FitGaussianMixture, RecoversKnownMixture) {
  const std::uint64_t seed = test::announce_seed("Proposal.EmRecovery.draws", 404);
  const std::uint64_t fit_seed = test::announce_seed("Proposal.EmRecovery.fit", 11);
  const GaussianMixture truth = known_mixture();
  const Eigen::MatrixXd u = draws(truth, 20000, seed);
  MixtureFitSettings st;
  st.components = 2;
  st.seed = fit_seed;
  const GaussianMixture fit = fit_gaussian_mixture(u, st);
  ASSERT_EQ(fit.components(), 2);
  double worst_w = 0, worst_m = 0, worst_c = 0;
  for (int k = 0; k < 2; ++k) {
    // The fitted component nearest to the true mean k.
    int j = 0;
    (fit.means.colwise() - truth.means.col(k)).colwise().norm().minCoeff(&j);
    worst_w = std::max(worst_w, std::abs(fit.weights[j] - truth.weights[k]));
    worst_m = std::max(worst_m, (fit.means.col(j) - truth.means.col(k)).cwiseAbs().maxCoeff());
    const Eigen::MatrixXd& c = truth.covariances[static_cast<std::size_t>(k)];
    const Eigen::MatrixXd& cf = fit.covariances[static_cast<std::size_t>(j)];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) worst_c = std::max(worst_c, std::abs(cf(a, b) - c(a, b)) / std::sqrt(c(a, a) * c(b, b)));
  }
  // Covariance entries relative to √(Σ_aa Σ_bb) (a correlation scale; 10% allowed).
  std::printf("[worst] EM recovery: weight %.4f (≤ 0.02), mean %.4f (≤ 0.05), covariance %.4f (≤ 0.10)\n", worst_w,
              worst_m, worst_c);
  EXPECT_LE(worst_w, 0.02);
  EXPECT_LE(worst_m, 0.05);
  EXPECT_LE(worst_c, 0.10);
}

TEST(FitGaussianMixture, DeterministicForASeed) {
  const std::uint64_t seed = test::announce_seed("Proposal.EmDeterminism", 405);
  const Eigen::MatrixXd u = draws(random_mixture(3, 4, seed), 3000, seed);
  MixtureFitSettings st;
  st.components = 4;
  st.seed = seed;
  const GaussianMixture a = fit_gaussian_mixture(u, st);
  const GaussianMixture b = fit_gaussian_mixture(u, st);
  ASSERT_EQ(a.components(), b.components());
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.means, b.means);
  for (int k = 0; k < a.components(); ++k)
    EXPECT_EQ(a.covariances[static_cast<std::size_t>(k)], b.covariances[static_cast<std::size_t>(k)]);
  std::printf("EM on 3000 draws in 3-d: %d components, bit-identical twice\n", a.components());
}

TEST(FitGaussianMixture, FewSamplesReduceComponents) {
  const Eigen::MatrixXd u = draws(known_mixture(), 20, 406);
  MixtureFitSettings st;
  st.components = 5;
  const GaussianMixture g = fit_gaussian_mixture(u, st);
  // ⌊20 / (2·(2 + 1))⌋ = 3 at most; components with < d + 1 effective samples are dropped.
  std::printf("20 samples in 2-d, 5 asked: %d components\n", g.components());
  EXPECT_GE(g.components(), 1);
  EXPECT_LE(g.components(), 3);
  EXPECT_TRUE(g.log_density(u).allFinite());
  // Exactly d + 1 samples: one component, still positive definite thanks to the floor.
  const GaussianMixture one = fit_gaussian_mixture(u.leftCols(3), st);
  EXPECT_EQ(one.components(), 1);
  // Duplicated samples (a sampler that got stuck) do not give a singular covariance.
  Eigen::MatrixXd dup(2, 40);
  dup.leftCols(20) = u;
  dup.rightCols(20) = u.col(0).replicate(1, 20);
  EXPECT_TRUE(fit_gaussian_mixture(dup, st).log_density(dup).allFinite());
}

TEST(FitGaussianMixture, ErrorMessages) {
  const auto message = [](const Eigen::MatrixXd& u, const MixtureFitSettings& st) -> std::string {
    try {
      (void)fit_gaussian_mixture(u, st);
    } catch (const ProposalError& e) {
      return e.what();
    }
    return "(no ProposalError)";
  };
  const std::string few = message(Eigen::MatrixXd::Random(3, 3), {});
  std::printf("too few: %s\n", few.c_str());
  EXPECT_THAT(few, AllOf(HasSubstr("3 samples in 3 dimensions"), HasSubstr("at least d + 1 = 4")));

  Eigen::MatrixXd bad = draws(known_mixture(), 100, 407);
  bad(1, 7) = std::numeric_limits<double>::quiet_NaN();
  const std::string nan = message(bad, {});
  std::printf("non-finite: %s\n", nan.c_str());
  EXPECT_THAT(nan, AllOf(HasSubstr("sample 7"), HasSubstr("coordinate 1"), HasSubstr("nan")));
  bad(1, 7) = kInf;
  EXPECT_THAT(message(bad, {}), HasSubstr("is inf"));

  MixtureFitSettings st;
  st.components = 0;
  EXPECT_THAT(message(draws(known_mixture(), 100, 407), st), HasSubstr("components is 0"));
  st = {};
  st.covariance_floor = 0.0;
  EXPECT_THAT(message(draws(known_mixture(), 100, 407), st), HasSubstr("covariance_floor 0 must be positive"));
}

// ---- RoundProposal and PooledProposal ---------------------------------------------------------

// A later round's proposal for `spec` in d dimensions (mixture of 3 components, α = 0.1).
RoundProposal round_proposal(const std::string& spec, int d, std::uint64_t seed, double alpha = 0.1) {
  return RoundProposal(prior_of(spec, d), random_mixture(d, 3, seed, 0.5), alpha);
}

// log q_r finite and ∇u log q_r against finite differences at u.
void check_round_score(const RoundProposal& q, const Eigen::MatrixXd& u, const std::string& what) {
  const Eigen::RowVectorXd lq = q.log_density_u(u);
  ASSERT_TRUE(lq.allFinite()) << what;
  const Eigen::MatrixXd exact = q.score_u(u);
  ASSERT_TRUE(exact.allFinite()) << what;
  const Eigen::MatrixXd fd = fd_gradient([&](const Eigen::MatrixXd& v) { return q.log_density_u(v); }, u);
  EXPECT_LE(worst_error(what, fd, exact, u), kFdTolerance) << what;
}

TEST(RoundProposal, ScoreMatchesFiniteDifferences) {
  const std::uint64_t seed = test::announce_seed("Proposal.RoundScore", 408);
  for (const std::string& spec : kPriorSpecs) {
    for (const int d : {1, 2, 5}) {
      check_round_score(round_proposal(spec, d, seed + static_cast<std::uint64_t>(d)), test_points(d, seed),
                        label(spec, d));
    }
  }
}

TEST(RoundProposal, PriorOnlyRoundIsThePrior) {
  const auto prior = prior_of("lognormal(-0.5, 0.7)", 2);
  const RoundProposal q(prior);
  const ParameterTransform t = ParameterTransform::for_prior(*prior);
  const Eigen::MatrixXd u = test_points(2, 3);
  EXPECT_EQ(q.log_density_u(u), t.prior_log_density(*prior, u));
  EXPECT_EQ(q.score_u(u), t.prior_score(*prior, u));
  EXPECT_EQ(q.description(), prior->spec());
  // Same draws as the prior itself.
  for (std::uint64_t k = 0; k < 10; ++k) {
    double a[2], b[2];
    CounterRng r1(9, Stream::prior, k), r2(9, Stream::prior, k);
    q.sample_theta(r1, a);
    prior->sample(r2, b);
    EXPECT_EQ(a[0], b[0]);
    EXPECT_EQ(a[1], b[1]);
  }
}

TEST(RoundProposal, RejectsBadDefensiveFractionAndDimension) {
  const auto prior = prior_of("normal(0, 1)", 2);
  EXPECT_THROW(RoundProposal(prior, random_mixture(2, 2, 1), 0.0), ProposalError);
  EXPECT_THROW(RoundProposal(prior, random_mixture(2, 2, 1), 1.5), ProposalError);
  EXPECT_THROW(RoundProposal(prior, random_mixture(3, 2, 1), 0.1), ProposalError);
  EXPECT_THROW(RoundProposal(nullptr), ProposalError);
}

// ∫ over u by the midpoint rule on [lo, hi] with `n` cells of a 1-d log density.
double integrate_1d(const LogDensity& f, double lo, double hi, Eigen::Index n) {
  const double h = (hi - lo) / static_cast<double>(n);
  Eigen::MatrixXd u(1, n);
  for (Eigen::Index j = 0; j < n; ++j) u(0, j) = lo + (static_cast<double>(j) + 0.5) * h;
  return f(u).array().exp().sum() * h;
}

TEST(RoundProposal, IntegratesToOne) {
  const std::uint64_t seed = test::announce_seed("Proposal.RoundIntegral", 409);
  // A uniform prior in u coordinates: π_u(u) = σ(u)σ(−u), tails e^-|u|: [-80, 80] misses ~e^-80.
  const RoundProposal q(prior_of("uniform(-1, 3)", 1), random_mixture(1, 3, seed, 0.8), 0.3);
  const double mass = integrate_1d([&](const Eigen::MatrixXd& u) { return q.log_density_u(u); }, -80, 80, 160000);
  // And a pooled proposal of three rounds.
  const PooledProposal pooled({RoundProposal(prior_of("uniform(-1, 3)", 1)), q,
                               RoundProposal(prior_of("uniform(-1, 3)", 1), random_mixture(1, 2, seed + 1, 0.4), 0.1)},
                              {1000, 2000, 500});
  const double pooled_mass =
      integrate_1d([&](const Eigen::MatrixXd& u) { return pooled.log_density_u(u); }, -80, 80, 160000);
  std::printf("[worst] 1-d round proposal ∫ q du − 1 = %.2e, pooled %.2e\n", mass - 1.0, pooled_mass - 1.0);
  EXPECT_NEAR(mass, 1.0, 1e-4);
  EXPECT_NEAR(pooled_mass, 1.0, 1e-4);
}

// A later round with the prior truncated to the region where log g ≥ −2d (edge width 0.7, 16
// candidates, 30 % from g itself), g a 3-component mixture: a region holding some but not all of
// the prior's mass.
RoundProposal truncated_proposal(const std::string& spec, int d, std::uint64_t seed, double alpha = 0.1) {
  return RoundProposal(prior_of(spec, d), random_mixture(d, 3, seed, 0.5), alpha,
                       PriorTruncation{-2.0 * d, 0.7, 16, 0.3});
}

TEST(RoundProposal, TruncatedScoreMatchesFiniteDifferences) {
  const std::uint64_t seed = test::announce_seed("Proposal.TruncatedScore", 417);
  for (const std::string& spec : kPriorSpecs) {
    for (const int d : {1, 2, 5}) {
      const RoundProposal q = truncated_proposal(spec, d, seed + static_cast<std::uint64_t>(d));
      const double z = std::exp(q.truncation_log_mass());
      ASSERT_TRUE(z > 1e-3 && z < 0.999) << spec << " d = " << d << ": Z = " << z;
      const Eigen::MatrixXd u = test_points(d, seed);
      check_round_score(q, u, label(spec, d) + fmt::format(", truncated (Z {:.3f})", z));
      // The focused part alone too (what ProposalPrior differentiates).
      Eigen::RowVectorXd lt;
      Eigen::MatrixXd gt;
      q.evaluate_focus_u(u, &lt, &gt);
      const Eigen::MatrixXd fdt = fd_gradient(
          [&](const Eigen::MatrixXd& v) {
            Eigen::RowVectorXd l;
            q.evaluate_focus_u(v, &l, nullptr);
            return l;
          },
          u);
      EXPECT_LE(worst_error(label(spec, d) + ", truncated part alone", fdt, gt, u), kFdTolerance);
    }
  }
}

TEST(RoundProposal, TruncationMassMatchesQuadrature) {
  const std::uint64_t seed = test::announce_seed("Proposal.TruncationMass", 418);
  // One dimension, a box prior: Z = ∫ π_u σ((log g − τ)/h) du by the midpoint rule against the
  // estimate from 2^18 prior draws (standard error ≤ √(Z(1 − Z)/2^18)), and ∫ q du = 1 to the
  // same relative accuracy (only the truncated part's normalisation uses the estimate).
  const auto prior = prior_of("uniform(-1, 3)", 1);
  const ParameterTransform t = ParameterTransform::for_prior(*prior);
  const GaussianMixture g = random_mixture(1, 3, seed, 0.8);
  for (const double tau : {-1.0, -3.0, -6.0}) {
    const PriorTruncation tr{tau, 0.5, 8};
    const RoundProposal q(prior, g, 0.3, tr);
    const double z_quad = integrate_1d(
        [&](const Eigen::MatrixXd& u) {
          Eigen::RowVectorXd out = t.prior_log_density(*prior, u);
          const Eigen::RowVectorXd lg = g.log_density(u);
          for (Eigen::Index j = 0; j < u.cols(); ++j) out[j] -= std::log1p(std::exp(-(lg[j] - tau) / 0.5));
          return out;
        },
        -80, 80, 160000);
    const double z = std::exp(q.truncation_log_mass());
    const double se = std::sqrt(z_quad * (1 - z_quad) / std::ldexp(1.0, 18));
    const double mass = integrate_1d([&](const Eigen::MatrixXd& u) { return q.log_density_u(u); }, -80, 80, 160000);
    std::printf("τ = %g: Z %.5f, by quadrature %.5f (%.2f SE); ∫ q du − 1 = %.2e\n", tau, z, z_quad,
                (z - z_quad) / se, mass - 1.0);
    EXPECT_LE(std::abs(z - z_quad), kSigmas * se) << "τ = " << tau;
    EXPECT_NEAR(mass, 1.0, kSigmas * se / z_quad + 1e-4) << "τ = " << tau;
  }
  // Bad settings are named.
  try {
    (void)RoundProposal(prior, g, 0.3, PriorTruncation{-1.0, 0.0, 8});
    ADD_FAILURE() << "width 0 accepted";
  } catch (const ProposalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("width 0 positive"));
  }
  EXPECT_THROW((void)RoundProposal(prior, g, 0.3, PriorTruncation{kInf, 1.0, 8}), ProposalError);
  EXPECT_THROW((void)RoundProposal(prior, g, 0.3, PriorTruncation{-1.0, 1.0, 0}), ProposalError);
  EXPECT_THROW((void)RoundProposal(prior, g, 0.3, PriorTruncation{-1.0, 1.0, 8, 1.0}), ProposalError);
  // A region the prior never reaches: Z = 0, and the truncated part is g itself.
  const RoundProposal far(prior, g, 0.3, PriorTruncation{50.0, 0.01, 8});
  const Eigen::MatrixXd u = test_points(1, seed);
  EXPECT_EQ(far.truncation_log_mass(), -kInf);
  Eigen::RowVectorXd lt;
  far.evaluate_focus_u(u, &lt, nullptr);
  EXPECT_EQ(lt, g.log_density(u));
}

TEST(PooledProposal, ScoreMatchesFiniteDifferences) {
  const std::uint64_t seed = test::announce_seed("Proposal.PooledScore", 410);
  for (const std::string& spec : kPriorSpecs) {
    for (const int d : {1, 2, 5}) {
      const auto prior = prior_of(spec, d);
      const PooledProposal q({RoundProposal(prior),
                              RoundProposal(prior, random_mixture(d, 3, seed + 10 * static_cast<std::uint64_t>(d), 0.5), 0.1),
                              RoundProposal(prior, random_mixture(d, 2, seed + 1 + 10 * static_cast<std::uint64_t>(d), 0.3).widened(1.5), 0.2)},
                             {1000, 2000, 500});
      const Eigen::MatrixXd u = test_points(d, seed);
      ASSERT_TRUE(q.log_density_u(u).allFinite()) << spec << " d = " << d;
      const Eigen::MatrixXd exact = q.score_u(u);
      ASSERT_TRUE(exact.allFinite()) << spec << " d = " << d;
      const Eigen::MatrixXd fd = fd_gradient([&](const Eigen::MatrixXd& v) { return q.log_density_u(v); }, u);
      EXPECT_LE(worst_error("pooled " + label(spec, d), fd, exact, u), kFdTolerance) << spec << " d = " << d;
    }
  }
}

TEST(PooledProposal, WeightsAndValidation) {
  const auto prior = prior_of("normal(0, 1)", 2);
  const PooledProposal q({RoundProposal(prior), round_proposal("normal(0, 1)", 2, 3)}, {1000, 3000});
  EXPECT_NEAR(std::exp(q.log_weights()[0]), 0.25, 1e-15);
  EXPECT_NEAR(std::exp(q.log_weights()[1]), 0.75, 1e-15);
  // Σ_r w_r q_r at a point, by hand.
  const Eigen::MatrixXd u = column({0.4, -1.1});
  const double by_hand = std::log(0.25 * std::exp(q.rounds()[0].log_density_u(u)[0]) +
                                  0.75 * std::exp(q.rounds()[1].log_density_u(u)[0]));
  EXPECT_NEAR(q.log_density_u(u)[0], by_hand, 1e-13);
  EXPECT_THROW(PooledProposal({RoundProposal(prior)}, {0}), ProposalError);
  EXPECT_THROW(PooledProposal({RoundProposal(prior)}, {1, 2}), ProposalError);
  EXPECT_THROW(PooledProposal({RoundProposal(prior), RoundProposal(prior_of("normal(0, 2)", 2))}, {1, 2}),
               ProposalError);
  EXPECT_THAT(q.description(), HasSubstr("pooled(1000·normal(0, 1) + 3000·(0.9·mixture(3 components"));
}

// ---- ProposalPrior ----------------------------------------------------------------------------

// Moments of θ under exp(ProposalPrior::log_density) by the midpoint rule in u (θ = T(u), dθ =
// (dθ/du) du, so the box's faces and the log-normal's long tail need no special grid).
struct Moments {
  double mass = 0, mean = 0, var = 0, mu4 = 0;
};
Moments moments_by_quadrature(const ProposalPrior& p, double lo, double hi, Eigen::Index n) {
  const ParameterTransform& t = p.proposal().transform();
  const double h = (hi - lo) / static_cast<double>(n);
  Eigen::MatrixXd u(1, n);
  for (Eigen::Index j = 0; j < n; ++j) u(0, j) = lo + (static_cast<double>(j) + 0.5) * h;
  const Eigen::MatrixXd theta = t.to_constrained(u);
  const Eigen::MatrixXd jac = t.jacobian(u);
  Eigen::ArrayXd w(n);
  for (Eigen::Index j = 0; j < n; ++j) w[j] = std::exp(p.log_density({&theta(0, j), 1})) * jac(0, j) * h;
  Moments m;
  const Eigen::ArrayXd th = theta.row(0).transpose().array();
  m.mass = w.sum();
  m.mean = (w * th).sum() / m.mass;
  m.var = (w * (th - m.mean).square()).sum() / m.mass;
  m.mu4 = (w * (th - m.mean).pow(4)).sum() / m.mass;
  return m;
}

void check_sampling(const std::string& spec, const GaussianMixture& g, double alpha, double lo, double hi,
                    std::uint64_t seed, std::optional<PriorTruncation> truncation = std::nullopt) {
  const ProposalPrior p(RoundProposal(prior_of(spec, 1), g, alpha, truncation), 2);
  const Moments m = moments_by_quadrature(p, lo, hi, 400000);
  constexpr int kN = 50000;
  std::vector<double> theta(kN);
  int from_faces = 0;
  for (int k = 0; k < kN; ++k) {
    CounterRng rng(seed, Stream::prior, static_cast<std::uint64_t>(k));
    p.sample(rng, {&theta[static_cast<std::size_t>(k)], 1});
    ASSERT_TRUE(p.in_support({&theta[static_cast<std::size_t>(k)], 1})) << theta[static_cast<std::size_t>(k)];
    if (!std::isfinite(p.proposal().transform().to_unconstrained(column({theta[static_cast<std::size_t>(k)]}))(0, 0)))
      ++from_faces;
  }
  double mean = 0;
  for (double v : theta) mean += v;
  mean /= kN;
  double var = 0;
  for (double v : theta) var += (v - mean) * (v - mean);
  var /= kN - 1;
  const double se_mean = std::sqrt(m.var / kN);
  const double se_var = std::sqrt((m.mu4 - m.var * m.var) / kN);
  std::printf("%s%s: ∫ q_θ dθ − 1 = %.2e; mean %.5f vs %.5f (%.2f SE), var %.5f vs %.5f (%.2f SE)\n", spec.c_str(),
              truncation ? " truncated" : "", m.mass - 1.0, mean, m.mean, (mean - m.mean) / se_mean, var, m.var, (var - m.var) / se_var);
  // The truncated part is normalised by Z estimated from 2^18 draws (TruncationMassMatchesQuadrature).
  EXPECT_NEAR(m.mass, 1.0, truncation ? 2e-3 : 1e-6) << spec;
  EXPECT_LE(std::abs(mean - m.mean), kSigmas * se_mean) << spec;
  EXPECT_LE(std::abs(var - m.var), kSigmas * se_var) << spec;
  EXPECT_EQ(from_faces, 0) << spec << ": draws on a face of the box";
}

TEST(ProposalPrior, SamplesMatchLogDensity) {
  const std::uint64_t seed = test::announce_seed("Proposal.SampleTheta", 411);
  Eigen::MatrixXd m(1, 2);
  m << -1.0, 1.5;
  // Box: mixture components in u at −1 and 1.5 (sd 0.6, 0.4); α = 0.25.
  check_sampling("uniform(-1, 2)",
                 GaussianMixture(Eigen::Vector2d(0.4, 0.6), m, {column({0.36}), column({0.16})}), 0.25, -60, 60,
                 seed);
  // Log-normal: components in u = log θ at 0 and 0.8 (sd 0.2, 0.3); α = 0.2.
  m << 0.0, 0.8;
  check_sampling("lognormal(0.2, 0.5)",
                 GaussianMixture(Eigen::Vector2d(0.5, 0.5), m, {column({0.04}), column({0.09})}), 0.2, -12, 12,
                 seed + 1);
}

TEST(ProposalPrior, TruncatedSamplesMatchLogDensity) {
  const std::uint64_t seed = test::announce_seed("Proposal.TruncatedSampleTheta", 419);
  Eigen::MatrixXd m(1, 2);
  m << -1.0, 1.5;
  const GaussianMixture box_g(Eigen::Vector2d(0.4, 0.6), m, {column({0.36}), column({0.16})});
  // Z ≈ 0.3 for the box: with 4 candidates β = (1 − Z)^4 ≈ 0.24 of the focused draws fall back to
  // g, so both branches of the sampler are exercised; with 64, β ≈ 1e-10.
  check_sampling("uniform(-1, 2)", box_g, 0.25, -60, 60, seed, PriorTruncation{-1.5, 0.5, 4});
  check_sampling("uniform(-1, 2)", box_g, 0.25, -60, 60, seed + 1, PriorTruncation{-1.5, 0.5, 64});
  check_sampling("uniform(-1, 2)", box_g, 0.25, -60, 60, seed + 3, PriorTruncation{-1.5, 0.5, 64, 0.5});
  m << 0.0, 0.8;
  check_sampling("lognormal(0.2, 0.5)",
                 GaussianMixture(Eigen::Vector2d(0.5, 0.5), m, {column({0.04}), column({0.09})}), 0.2, -12, 12,
                 seed + 2, PriorTruncation{0.0, 1.0, 8});
}

TEST(ProposalPrior, LogDensityIsTheChangeOfVariables) {
  const std::uint64_t seed = test::announce_seed("Proposal.ChangeOfVariables", 412);
  double worst = 0;
  for (const bool truncated : {false, true}) for (const std::string& spec : kPriorSpecs) {
    for (const int d : {1, 2, 5}) {
      const ProposalPrior p(truncated ? truncated_proposal(spec, d, seed) : round_proposal(spec, d, seed), 3);
      const ParameterTransform& t = p.proposal().transform();
      Eigen::MatrixXd u = test_points(d, seed).leftCols(25);  // moderate |u|: θ well inside
      const Eigen::MatrixXd theta = t.to_constrained(u);
      u = t.to_unconstrained(theta);  // the u the θ's really have
      const Eigen::RowVectorXd expected = p.proposal().log_density_u(u) - t.log_abs_det_jacobian(u);
      for (Eigen::Index j = 0; j < u.cols(); ++j) {
        const double got = p.log_density({theta.col(j).data(), static_cast<std::size_t>(d)});
        const double e = std::abs(got - expected[j]) / std::max(1.0, std::abs(expected[j]));
        worst = std::max(worst, e);
        EXPECT_LE(e, 1e-12) << spec << " d = " << d << " column " << j << (truncated ? " truncated" : "");
      }
    }
  }
  std::printf("[worst] ProposalPrior::log_density vs log q_u − log|det|: %.2e (≤ 1e-12 relative, floor 1)\n", worst);
}

TEST(ProposalPrior, GradientMatchesFiniteDifferencesInTheta) {
  const std::uint64_t seed = test::announce_seed("Proposal.ThetaGradient", 413);
  for (const bool truncated : {false, true}) for (const std::string& spec : kPriorSpecs) {
    for (const int d : {1, 2, 5}) {
      const ProposalPrior p(truncated ? truncated_proposal(spec, d, seed) : round_proposal(spec, d, seed), 2);
      const ParameterTransform& t = p.proposal().transform();
      const Eigen::MatrixXd theta = t.to_constrained(test_points(d, seed).leftCols(25) * 0.5);
      const auto ld = [&](const Eigen::MatrixXd& th) {
        Eigen::RowVectorXd out(th.cols());
        for (Eigen::Index j = 0; j < th.cols(); ++j) out[j] = p.log_density({th.col(j).data(), static_cast<std::size_t>(d)});
        return out;
      };
      Eigen::MatrixXd exact(d, theta.cols());
      for (Eigen::Index j = 0; j < theta.cols(); ++j)
        p.grad_log_density({theta.col(j).data(), static_cast<std::size_t>(d)},
                           {exact.col(j).data(), static_cast<std::size_t>(d)});
      // Steps relative to the distance to the nearest face for the box (θ ∈ (−1, 1)).
      Eigen::MatrixXd fd(d, theta.cols());
      for (Eigen::Index i = 0; i < d; ++i) {
        for (Eigen::Index j = 0; j < theta.cols(); ++j) {
          const double x = theta(i, j);
          const double h = spec[0] == 'u' ? 1e-4 * (1.0 - std::abs(x)) : spec[0] == 'l' ? 1e-4 * x : 1e-3;
          const auto at = [&](double k) {
            Eigen::MatrixXd v = theta.col(j);
            v(i, 0) += k * h;
            return ld(v)[0];
          };
          fd(i, j) = (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h);
        }
      }
      EXPECT_LE(worst_error("ProposalPrior ∇θ " + label(spec, d) + (truncated ? ", truncated" : ""), fd, exact, theta),
                kFdTolerance);
    }
  }
}

TEST(ProposalPrior, PriorInterface) {
  const auto prior = prior_of("uniform(-1, 1)", 2);
  const ProposalPrior p(RoundProposal(prior, random_mixture(2, 5, 1), 0.1), 2);
  EXPECT_EQ(p.dim(), 2);
  EXPECT_EQ(p.kind(), "proposal");
  EXPECT_FALSE(p.gaussian_form().has_value());
  EXPECT_EQ(p.lower_bounds(), prior->lower_bounds());
  EXPECT_EQ(p.upper_bounds(), prior->upper_bounds());
  const std::string spec = p.spec();
  std::printf("spec: %s\n", spec.c_str());
  EXPECT_THAT(spec, AllOf(HasSubstr("proposal(round 2: 0.9·mixture(5 components, fingerprint "),
                          HasSubstr(") + 0.1·uniform(-1, 1))")));
  EXPECT_THROW((void)parse_prior(spec, 2), PriorSpecError);  // descriptive, not a prior spec
  EXPECT_THROW((void)ParameterTransform::for_prior(p), std::invalid_argument);
  // A different mixture or α gives a different spec (resume compares it).
  EXPECT_NE(spec, ProposalPrior(RoundProposal(prior, random_mixture(2, 5, 2), 0.1), 2).spec());
  EXPECT_NE(spec, ProposalPrior(RoundProposal(prior, random_mixture(2, 5, 1), 0.2), 2).spec());
  EXPECT_EQ(spec, ProposalPrior(RoundProposal(prior, random_mixture(2, 5, 1), 0.1), 2).spec());
  // A truncation is named with its numbers, and any change of them changes the fingerprint.
  const auto truncated = [&](double share) {
    return ProposalPrior(RoundProposal(prior, random_mixture(2, 5, 1), 0.1, PriorTruncation{-1.5, 1.0, 64, share}), 2)
        .spec();
  };
  const std::string ts = truncated(0.5);
  std::printf("truncated spec: %s\n", ts.c_str());
  EXPECT_THAT(ts, AllOf(HasSubstr("proposal(round 2: 0.9·truncated-prior(τ -1.5, h 1, Z "),
                        HasSubstr("mixture share 0.5; 5 components, fingerprint ")));
  EXPECT_NE(ts, truncated(0.25));
  EXPECT_NE(ts.substr(ts.find("fingerprint")), spec.substr(spec.find("fingerprint")));

  const double outside[2] = {1.5, 0.0};
  EXPECT_FALSE(p.in_support(outside));
  EXPECT_EQ(p.log_density(outside), -kInf);
  // On a face (u = ±inf) the mixture part vanishes: log α + log π(θ) = log 0.1 − log 4.
  const double face[2] = {1.0, 0.2};
  EXPECT_NEAR(p.log_density(face), std::log(0.1) - std::log(4.0), 1e-14);
  double grad[2] = {7, 7};
  p.grad_log_density(face, grad);
  EXPECT_EQ(grad[0], 0.0);
  EXPECT_EQ(grad[1], 0.0);
}

TEST(ProposalPrior, FixedDrawCountAndStrictlyInsideTheBox) {
  const std::uint64_t seed = test::announce_seed("Proposal.DrawCount", 414);
  // A narrow box far from 0 (width/|θ| = 1e-3) and a mixture pushing u to ±60: T(u) rounds onto
  // the faces without the clamp and the one-ulp nudge.
  Eigen::MatrixXd m(2, 2);
  m << 60.0, -60.0, -60.0, 60.0;
  const GaussianMixture g(Eigen::Vector2d(0.5, 0.5), m, {Eigen::MatrixXd::Identity(2, 2), Eigen::MatrixXd::Identity(2, 2)});
  const ProposalPrior p(RoundProposal(prior_of("uniform(1000, 1001)", 2), g, 0.3), 2);
  int picked_mixture = 0;
  for (std::uint64_t k = 0; k < 2000; ++k) {
    CounterRng rng(seed, Stream::prior, k);
    double theta[2];
    p.sample(rng, theta);
    // 1 uniform (the part) + 2 prior uniforms + the mixture's 1 uniform and 2 normals (one pair)
    // = 6 words, whichever part was picked.
    CounterRng ref(seed, Stream::prior, k);
    for (int w = 0; w < 6; ++w) ref.next_u64();
    ASSERT_EQ(rng.next_u64(), ref.next_u64()) << "draw " << k;
    ASSERT_TRUE(theta[0] > 1000.0 && theta[0] < 1001.0 && theta[1] > 1000.0 && theta[1] < 1001.0)
        << theta[0] << ", " << theta[1];
    const Eigen::MatrixXd u = p.proposal().transform().to_unconstrained(column({theta[0], theta[1]}));
    ASSERT_TRUE(u.allFinite()) << "draw " << k;
    if (std::abs(u(0, 0)) > 25) ++picked_mixture;
  }
  std::printf("%d of 2000 draws from the mixture (expected ~1400), all strictly inside\n", picked_mixture);
  EXPECT_GT(picked_mixture, 1200);

  // Truncated: 6 words as above plus M × (2 prior words + 1 acceptance uniform) and the uniform
  // that picks the share drawn from g, whichever candidate (or none) is kept.
  const ProposalPrior pt(RoundProposal(prior_of("uniform(-1, 1)", 2), random_mixture(2, 2, seed), 0.3,
                                       PriorTruncation{-1.0, 0.5, 5}),
                         2);
  for (std::uint64_t k = 0; k < 500; ++k) {
    CounterRng rng(seed, Stream::prior, k);
    double theta[2];
    pt.sample(rng, theta);
    CounterRng ref(seed, Stream::prior, k);
    for (int w = 0; w < 6 + 5 * 3 + 1; ++w) ref.next_u64();
    ASSERT_EQ(rng.next_u64(), ref.next_u64()) << "truncated draw " << k;
  }
}

TEST(ProposalPrior, DrivesTheSimulationEngine) {
  const std::uint64_t seed = test::announce_seed("Proposal.Engine", 415);
  test::TempDir dir;
  auto sim = open_simulator("gaussian_linear", {}, {test::bundled_plugin_dir()});
  const int d = static_cast<int>(sim->parameter_dim());
  const auto prior = prior_of("uniform(-1, 1)", d);
  const ProposalPrior p(RoundProposal(prior, random_mixture(d, 3, seed, 0.5), 0.1), 2);
  SimulationSettings st;
  st.num_simulations = 300;
  st.seed = seed;
  st.threads = 2;
  st.progress = ProgressMode::quiet;
  const std::string path = dir.file("round2.h5");
  run_simulations(*sim, p, "test proposal", st, path);
  const SimulationData data = read_simulations(path);
  ASSERT_EQ(data.theta.rows(), 300);
  EXPECT_EQ(data.prior, p.spec());
  for (Eigen::Index r = 0; r < data.theta.rows(); ++r) {
    std::vector<double> expected(static_cast<std::size_t>(d));
    CounterRng rng(seed, Stream::prior, static_cast<std::uint64_t>(data.index[static_cast<std::size_t>(r)]));
    p.sample(rng, expected);
    for (int i = 0; i < d; ++i) ASSERT_EQ(data.theta(r, i), expected[static_cast<std::size_t>(i)]) << "row " << r;
    ASSERT_TRUE(p.in_support({data.theta.row(r).data(), static_cast<std::size_t>(d)}));
  }
}

// ---- Files ------------------------------------------------------------------------------------

TEST(ProposalFile, RoundTripIsBitIdentical) {
  const std::uint64_t seed = test::announce_seed("Proposal.FileRoundTrip", 416);
  test::TempDir dir;
  const GaussianMixture g = random_mixture(3, 4, seed).widened(1.5);
  const std::string path = dir.file("mix.h5");
  write_gaussian_mixture(path, "/rounds/2/mixture", g);
  write_gaussian_mixture(path, "/rounds/3/mixture", random_mixture(2, 1, seed));  // a second one, same file
  EXPECT_THROW(write_gaussian_mixture(path, "/rounds/2/mixture", g), ProposalError);
  const GaussianMixture r = read_gaussian_mixture(path, "/rounds/2/mixture");
  const auto same_bits = [](const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
    if (a.rows() != b.rows() || a.cols() != b.cols()) return false;
    for (Eigen::Index k = 0; k < a.size(); ++k)
      if (std::bit_cast<std::uint64_t>(a.data()[k]) != std::bit_cast<std::uint64_t>(b.data()[k])) return false;
    return true;
  };
  EXPECT_TRUE(same_bits(r.weights, g.weights));
  EXPECT_TRUE(same_bits(r.means, g.means));
  ASSERT_EQ(r.covariances.size(), g.covariances.size());
  for (std::size_t k = 0; k < g.covariances.size(); ++k) EXPECT_TRUE(same_bits(r.covariances[k], g.covariances[k]));
  EXPECT_TRUE(same_bits(r.log_normalizers(), g.log_normalizers()));
  EXPECT_EQ(read_gaussian_mixture(path, "rounds/3/mixture").components(), 1);

  // The proposal file of the sequential driver: mixture and α.
  const std::string pfile = dir.file("round2.proposal.h5");
  write_proposal_file(pfile, g, 0.15);
  double alpha = 0;
  const GaussianMixture q = read_proposal_file(pfile, &alpha);
  EXPECT_EQ(alpha, 0.15);
  EXPECT_TRUE(same_bits(q.means, g.means));
  EXPECT_FALSE(std::filesystem::exists(pfile + ".partial"));
  std::optional<PriorTruncation> none = PriorTruncation{};
  (void)read_proposal_file(pfile, &alpha, &none);
  EXPECT_FALSE(none.has_value());

  // With a truncation: its three numbers come back exactly.
  const std::string tfile = dir.file("round3.proposal.h5");
  write_proposal_file(tfile, g, 0.1, PriorTruncation{-2.718281828459045, 0.75, 48, 0.3});
  std::optional<PriorTruncation> tr;
  (void)read_proposal_file(tfile, &alpha, &tr);
  ASSERT_TRUE(tr.has_value());
  EXPECT_EQ(tr->threshold, -2.718281828459045);
  EXPECT_EQ(tr->width, 0.75);
  EXPECT_EQ(tr->candidates, 48);
  EXPECT_EQ(tr->mixture_share, 0.3);
  // Only some of the attributes: named.
  {
    h5::File f = h5::File::open(tfile, h5::Access::read_write);
    h5::Group gp = f.open_group("proposal");
    gp.set_attribute("truncation_width", -1.0);
    f.close();
  }
  try {
    (void)read_proposal_file(tfile, &alpha, &tr);
    ADD_FAILURE() << "a negative truncation width was accepted";
  } catch (const ProposalError& e) {
    std::printf("bad truncation: %s\n", e.what());
    EXPECT_THAT(e.what(), AllOf(HasSubstr(tfile + ":/proposal"), HasSubstr("width -1")));
  }
}

std::string read_error(const std::string& path, const std::string& group) {
  try {
    (void)read_gaussian_mixture(path, group);
  } catch (const ProposalError& e) {
    return e.what();
  }
  return "(no ProposalError)";
}

TEST(ProposalFile, MalformedFilesAreRejected) {
  test::TempDir dir;
  const std::string path = dir.file("bad.h5");
  {
    h5::File f = h5::File::create(path);
    const std::vector<double> w = {0.5, 0.5}, means(6, 0.0), cov(12, 0.0), cov_ok = {1, 0, 0, 0, 1, 0, 0, 0, 1,
                                                                                   1, 0, 0, 0, 1, 0, 0, 0, 1};
    {  // covariances 2 × 3 × 2 for means 2 × 3
      h5::Group g = f.create_group("shape");
      g.set_attribute("components", std::int64_t{2});
      g.create_array("weights", h5::DType::f64, {2}).write_all(std::span<const double>(w));
      g.create_array("means", h5::DType::f64, {2, 3}).write_all(std::span<const double>(means));
      g.create_array("covariances", h5::DType::f64, {2, 3, 2}).write_all(std::span<const double>(cov));
    }
    {  // three weights for two components
      h5::Group g = f.create_group("weights");
      g.set_attribute("components", std::int64_t{2});
      const std::vector<double> w3 = {0.2, 0.3, 0.5};
      g.create_array("weights", h5::DType::f64, {3}).write_all(std::span<const double>(w3));
      g.create_array("means", h5::DType::f64, {2, 3}).write_all(std::span<const double>(means));
      g.create_array("covariances", h5::DType::f64, {2, 3, 3}).write_all(std::span<const double>(cov_ok));
    }
    {  // no covariances
      h5::Group g = f.create_group("missing");
      g.set_attribute("components", std::int64_t{2});
      g.create_array("weights", h5::DType::f64, {2}).write_all(std::span<const double>(w));
      g.create_array("means", h5::DType::f64, {2, 3}).write_all(std::span<const double>(means));
    }
    {  // right shapes, a covariance that is not positive definite
      h5::Group g = f.create_group("not_spd");
      g.set_attribute("components", std::int64_t{2});
      std::vector<double> c = cov_ok;
      c[9] = -1.0;
      g.create_array("weights", h5::DType::f64, {2}).write_all(std::span<const double>(w));
      g.create_array("means", h5::DType::f64, {2, 3}).write_all(std::span<const double>(means));
      g.create_array("covariances", h5::DType::f64, {2, 3, 3}).write_all(std::span<const double>(c));
    }
    f.close();
  }
  const std::string shape = read_error(path, "/shape");
  std::printf("wrong shape: %s\n", shape.c_str());
  EXPECT_THAT(shape, AllOf(HasSubstr(path + ":/shape/covariances"), HasSubstr("has shape 2 × 3 × 2"),
                           HasSubstr("expected 2 × 3 × 3")));
  EXPECT_THAT(read_error(path, "/weights"),
              AllOf(HasSubstr(path + ":/weights/weights"), HasSubstr("has shape 3, expected 2")));
  const std::string missing = read_error(path, "/missing");
  std::printf("missing: %s\n", missing.c_str());
  EXPECT_THAT(missing, AllOf(HasSubstr(path), HasSubstr("covariances")));
  const std::string spd = read_error(path, "/not_spd");
  std::printf("not SPD: %s\n", spd.c_str());
  EXPECT_THAT(spd, AllOf(HasSubstr(path + ":/not_spd"), HasSubstr("covariance 1 is not positive definite")));
  EXPECT_THAT(read_error(path, "/nothing"), AllOf(HasSubstr(path), HasSubstr("no group /nothing")));
  EXPECT_THAT(read_error(dir.file("absent.h5"), "/x"), HasSubstr("absent.h5: no such file"));
}

}  // namespace
}  // namespace fsbi
