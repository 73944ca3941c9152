// The bundled two_moons simulator, loaded as the real plugin through the host API, checked
// against moments derived by hand from sbibm's definition (../shared/sbibm/TASKS.md):
//   a ~ U(-π/2, π/2), r ~ N(0.1, 0.01²), p = (r cos a + 0.25, r sin a),
//   x0 = p0 - |θ0+θ1|/√2, x1 = p1 + (θ1-θ0)/√2.
#include <fsbi/plugin.hpp>
#include <fsbi/random.hpp>

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kSqrt2 = std::numbers::sqrt2;

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/two_moons.so"; }

std::shared_ptr<const fsbi::Simulator> open(const fsbi::SimulatorOptions& options = {}) {
  return fsbi::Simulator::create(fsbi::Plugin::load(plugin_path()), options);
}

struct Batch {
  std::vector<double> x;             // n x 2
  std::vector<std::uint8_t> row_ok;  // n
};

// Simulates rows index_begin .. index_begin+n-1 (attempt 0) at one θ, in a single call.
Batch simulate_at(const fsbi::Simulator& sim, std::uint64_t seed, std::vector<double> theta,
                  std::size_t n, std::uint64_t index_begin = 0) {
  std::vector<std::uint64_t> index(n);
  std::iota(index.begin(), index.end(), index_begin);
  std::vector<std::uint32_t> attempt(n, 0);
  std::vector<double> thetas(2 * n);
  for (std::size_t i = 0; i < n; ++i) std::copy(theta.begin(), theta.end(), thetas.begin() + 2 * i);
  Batch b{std::vector<double>(2 * n), std::vector<std::uint8_t>(n, 7)};
  auto inst = sim.create_instance();
  const auto res = inst->simulate(seed, index, attempt, thetas, b.x, b.row_ok);
  EXPECT_FALSE(res.call_failed) << res.first_error;
  EXPECT_EQ(std::count(b.row_ok.begin(), b.row_ok.end(), 1), static_cast<std::ptrdiff_t>(n))
      << res.first_error;
  return b;
}

// Sample mean, variance and the Monte-Carlo standard errors of both (the variance's from the
// sample fourth central moment).
struct Moments {
  double mean, var, se_mean, se_var;
};

Moments moments(const std::vector<double>& v) {
  const double n = static_cast<double>(v.size());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double m2 = 0, m4 = 0;
  for (double e : v) {
    const double d = (e - mean) * (e - mean);
    m2 += d;
    m4 += d * d;
  }
  m2 /= n;
  m4 /= n;
  return {mean, m2 * n / (n - 1), std::sqrt(m2 / n), std::sqrt((m4 - m2 * m2) / n)};
}

std::vector<double> column(const std::vector<double>& x, std::size_t j) {
  std::vector<double> out(x.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = x[2 * i + j];
  return out;
}

// One data row of an sbibm CSV (header line, then values).
using fsbi::test::read_csv_row;

// Analytic moments from the definition.
constexpr double kMeanR = 0.1, kSdR = 0.01;
constexpr double kER2 = kSdR * kSdR + kMeanR * kMeanR;  // E[r²] = 0.0101
constexpr double kECos = 2 / kPi;                        // E[cos a] for a ~ U(-π/2, π/2)

void check_moments_at(double t0, double t1, std::uint64_t seed) {
  SCOPED_TRACE("theta = (" + std::to_string(t0) + ", " + std::to_string(t1) + ")");
  constexpr std::size_t n = 100000;
  auto sim = open();
  const Batch b = simulate_at(*sim, seed, {t0, t1}, n);

  const double shift0 = 0.25 - std::abs(t0 + t1) / kSqrt2, shift1 = (t1 - t0) / kSqrt2;
  const double mean0 = kMeanR * kECos + shift0;
  const double var0 = kER2 / 2 - (kMeanR * kECos) * (kMeanR * kECos);
  const double mean1 = shift1;
  const double var1 = kER2 / 2;

  const Moments m0 = moments(column(b.x, 0)), m1 = moments(column(b.x, 1));
  std::printf("  x0: mean %.6f (analytic %.6f, se %.1e)  var %.6e (analytic %.6e, se %.1e)\n",
              m0.mean, mean0, m0.se_mean, m0.var, var0, m0.se_var);
  std::printf("  x1: mean %.6f (analytic %.6f, se %.1e)  var %.6e (analytic %.6e, se %.1e)\n",
              m1.mean, mean1, m1.se_mean, m1.var, var1, m1.se_var);
  EXPECT_NEAR(m0.mean, mean0, 5 * m0.se_mean);
  EXPECT_NEAR(m0.var, var0, 5 * m0.se_var);
  EXPECT_NEAR(m1.mean, mean1, 5 * m1.se_mean);
  EXPECT_NEAR(m1.var, var1, 5 * m1.se_var);

  // Radial structure: around the crescent centre (shift0, shift1) the points lie at distance
  // r ~ N(0.1, 0.01²) and angle a ~ U(-π/2, π/2).
  std::vector<double> radius(n), angle(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double u = b.x[2 * i] - shift0, v = b.x[2 * i + 1] - shift1;
    radius[i] = std::hypot(u, v);
    angle[i] = std::atan2(v, u);
  }
  const Moments mr = moments(radius), ma = moments(angle);
  std::printf("  r:  mean %.6f (analytic 0.1, se %.1e)  sd %.6f (analytic 0.01)\n", mr.mean,
              mr.se_mean, std::sqrt(mr.var));
  std::printf("  a:  mean %.6f (analytic 0, se %.1e)  var %.6f (analytic %.6f)\n", ma.mean,
              ma.se_mean, ma.var, kPi * kPi / 12);
  EXPECT_NEAR(mr.mean, kMeanR, 5 * mr.se_mean);
  EXPECT_NEAR(mr.var, kSdR * kSdR, 5 * mr.se_var);
  EXPECT_NEAR(ma.mean, 0.0, 5 * ma.se_mean);
  EXPECT_NEAR(ma.var, kPi * kPi / 12, 5 * ma.se_var);
  // The angle never leaves the right half-plane.
  EXPECT_LT(*std::max_element(angle.begin(), angle.end()), kPi / 2);
  EXPECT_GT(*std::min_element(angle.begin(), angle.end()), -kPi / 2);
}

}  // namespace

TEST(TwoMoons, Metadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "two_moons");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("two_moons"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "");
  auto sim = fsbi::Simulator::create(plugin);
  EXPECT_EQ(sim->parameter_dim(), 2);
  EXPECT_EQ(sim->data_dim(), 2);
  EXPECT_EQ(sim->parameter_names(), (std::vector<std::string>{"parameter_1", "parameter_2"}));
  EXPECT_EQ(sim->data_names(), (std::vector<std::string>{"data_1", "data_2"}));
  ASSERT_TRUE(sim->default_prior().has_value());
  EXPECT_EQ(*sim->default_prior(), "uniform(-1, 1)");
  EXPECT_TRUE(sim->has_likelihood_score());
}

TEST(TwoMoons, RejectsAnyOption) {
  try {
    open({{"dim", "3"}});
    FAIL() << "an option was accepted";
  } catch (const fsbi::PluginError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown option 'dim'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("takes no options"), std::string::npos) << msg;
  }
}

TEST(TwoMoons, MomentsAtFixedTheta) {
  check_moments_at(0.3, -0.5, fsbi::test::announce_seed("two_moons moments (0.3,-0.5)", 20240611));
  check_moments_at(0.0, 0.0, fsbi::test::announce_seed("two_moons moments (0,0)", 20240612));
  // |θ0+θ1| folds the two moons: θ and -θ give the same x0 shift and opposite x1 shifts.
  check_moments_at(-0.7, 0.9, fsbi::test::announce_seed("two_moons moments (-0.7,0.9)", 20240613));
}

// The exact draw order: one uniform (a), then one normal (r), from the host's stream
// CounterRng(seed, Stream::simulator, index, attempt).
TEST(TwoMoons, UsesTheHostStreamInTheDocumentedOrder) {
  const std::uint64_t seed = fsbi::test::announce_seed("two_moons stream", 77);
  auto sim = open();
  const double t0 = 0.4, t1 = -0.1;
  const Batch b = simulate_at(*sim, seed, {t0, t1}, 50, 1000);
  for (std::size_t i = 0; i < 50; ++i) {
    fsbi::CounterRng rng(seed, fsbi::Stream::simulator, 1000 + i, 0);
    const double a = rng.uniform(-kPi / 2, kPi / 2);
    const double r = 0.1 + 0.01 * rng.normal();
    EXPECT_NEAR(b.x[2 * i], r * std::cos(a) + 0.25 - std::abs(t0 + t1) / kSqrt2, 1e-15) << i;
    EXPECT_NEAR(b.x[2 * i + 1], r * std::sin(a) + (t1 - t0) / kSqrt2, 1e-15) << i;
  }
}

// sbibm's observations (float32) lie on the crescent our simulator draws at their true θ.
TEST(TwoMoons, SbibmObservationsLieInTheSupport) {
  const std::uint64_t seed = fsbi::test::announce_seed("two_moons sbibm observations", 4242);
  auto sim = open();
  for (int obs = 1; obs <= 10; ++obs) {
    SCOPED_TRACE("obs_" + std::to_string(obs));
    const std::string dir = fsbi::test::shared_dir() + "/sbibm/two_moons/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) {
      if (obs == 1) GTEST_SKIP() << "sbibm data not found at " << dir;
      continue;
    }
    const auto theta = read_csv_row(dir + "/true_parameters.csv");
    const auto xo = read_csv_row(dir + "/observation.csv");
    ASSERT_EQ(theta.size(), 2u);
    ASSERT_EQ(xo.size(), 2u);
    constexpr std::size_t n = 10000;
    const Batch b = simulate_at(*sim, seed, theta, n, static_cast<std::uint64_t>(obs) * n);
    const double c0 = 0.25 - std::abs(theta[0] + theta[1]) / kSqrt2;
    const double c1 = (theta[1] - theta[0]) / kSqrt2;
    std::vector<double> radius(n);
    double min_u = 1e300;
    for (std::size_t i = 0; i < n; ++i) {
      const double u = b.x[2 * i] - c0, v = b.x[2 * i + 1] - c1;
      radius[i] = std::hypot(u, v);
      min_u = std::min(min_u, u);
    }
    const Moments mr = moments(radius);
    const double r_obs = std::hypot(xo[0] - c0, xo[1] - c1);
    const double u_obs = xo[0] - c0;
    std::printf("  obs_%d: r_obs %.5f, simulated r %.5f ± %.5f; x_o0 - centre0 = %.5f\n", obs,
                r_obs, mr.mean, std::sqrt(mr.var), u_obs);
    EXPECT_LT(std::abs(r_obs - mr.mean), 5 * std::sqrt(mr.var));
    EXPECT_GT(u_obs, -1e-6);  // right half of the circle (float32 rounding allowed)
    EXPECT_GE(min_u, 0.0);
  }
}

// log p(x|θ) from the definition: (x − centre(θ)) = (r cos a, r sin a) with r ~ N(0.1, 0.01²),
// a ~ U(-π/2, π/2), so the density at distance ρ from the centre (right half-plane) is
// N(ρ; 0.1, 0.01²) / (π ρ).
double log_lik(const std::vector<double>& theta, const std::vector<double>& x) {
  const double u = x[0] - (0.25 - std::abs(theta[0] + theta[1]) / kSqrt2);
  const double v = x[1] - (theta[1] - theta[0]) / kSqrt2;
  if (u <= 0) return -std::numeric_limits<double>::infinity();
  const double rho = std::hypot(u, v), z = (rho - 0.1) / 0.01;
  return -0.5 * z * z - std::log(0.01 * std::sqrt(2 * kPi)) - std::log(kPi * rho);
}

// The plugin's score against central differences of log p at data simulated at each θ (where the
// likelihood is positive), on both sides of the fold θ0 + θ1 = 0; at the fold itself the
// documented one-sided value, the one from θ0 + θ1 > 0.
TEST(TwoMoons, LikelihoodScoreMatchesFiniteDifferences) {
  const std::uint64_t seed = fsbi::test::announce_seed("two_moons score", 515);
  auto sim = open();
  const std::vector<std::vector<double>> thetas{{0.3, -0.5}, {0.4, 0.2}, {-0.7, 0.9}, {0.9, 0.95}, {-0.2, -0.6}};
  double worst = 0;
  for (std::size_t t = 0; t < thetas.size(); ++t) {
    const Batch b = simulate_at(*sim, seed, thetas[t], 4, 10 * t);
    for (std::size_t i = 0; i < 4; ++i) {
      const std::vector<double> x{b.x[2 * i], b.x[2 * i + 1]};
      worst = std::max(worst, fsbi::test::expect_score_matches_central_differences(
                                  *sim, thetas[t], x, [&](const std::vector<double>& th) { return log_lik(th, x); },
                                  {.size = 1e-7, .relative = false}, 1e-5, 1.0));
    }
  }
  std::printf("  worst relative |score - central difference| = %.2e\n", worst);

  const std::vector<double> fold{0.25, -0.25}, x{0.3, -0.3};
  std::vector<double> at(2), right(2);
  sim->likelihood_score(fold, x, at);
  sim->likelihood_score(std::vector<double>{0.25 + 1e-12, -0.25}, x, right);
  EXPECT_NEAR(at[0], right[0], 1e-6 * std::abs(right[0]));
  EXPECT_NEAR(at[1], right[1], 1e-6 * std::abs(right[1]));
}

TEST(TwoMoons, Deterministic) {
  const std::uint64_t seed = fsbi::test::announce_seed("two_moons determinism", 99);
  auto sim = open();
  constexpr std::size_t n = 100;
  std::vector<double> theta(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    theta[2 * i] = -1 + 2.0 * static_cast<double>(i) / n;
    theta[2 * i + 1] = 0.5 - static_cast<double>(i) / n;
  }
  std::vector<std::uint64_t> index(n);
  std::iota(index.begin(), index.end(), 500);
  std::vector<std::uint32_t> attempt(n, 0);

  auto inst = sim->create_instance();
  std::vector<double> once(2 * n), again(2 * n), singles(2 * n);
  std::vector<std::uint8_t> ok(n);
  inst->simulate(seed, index, attempt, theta, once, ok);
  // Same (seed, index, attempt) on a fresh instance: bit-identical.
  sim->create_instance()->simulate(seed, index, attempt, theta, again, ok);
  EXPECT_EQ(std::memcmp(once.data(), again.data(), once.size() * sizeof(double)), 0);
  // 100 batches of one: identical to one batch of 100.
  std::uint8_t ok1 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    inst->simulate(seed, std::span(&index[i], 1), std::span(&attempt[i], 1),
                   std::span(&theta[2 * i], 2), std::span(&singles[2 * i], 2), std::span(&ok1, 1));
    ASSERT_EQ(ok1, 1);
  }
  EXPECT_EQ(std::memcmp(once.data(), singles.data(), once.size() * sizeof(double)), 0);
  // A different index, attempt or seed: different x.
  std::vector<std::uint64_t> shifted(index);
  for (auto& i : shifted) ++i;
  std::vector<std::uint32_t> attempt1(n, 1);
  std::vector<double> other(2 * n);
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    inst->simulate(variant == 2 ? seed + 1 : seed, variant == 0 ? shifted : index,
                   variant == 1 ? attempt1 : attempt, theta, other, ok);
    for (std::size_t i = 0; i < n; ++i) EXPECT_NE(other[2 * i], once[2 * i]) << i;
  }
}
