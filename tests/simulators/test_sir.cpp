// The bundled sir simulator, loaded as the real plugin through the host API, checked against
// sbibm's definition (../shared/sbibm/TASKS.md): N = 10⁶, (S, I, R)(0) = (N − 1, 1, 0),
// dS/dt = −βSI/N, dI/dt = βSI/N − γI, dR/dt = γI; x_j ~ Binomial(1000, I(t_j)/N) at
// t_j = 0, 17, ..., 153.
//
// The reference trajectory is computed here independently of the plugin's adaptive odeint solve:
// the classical fixed-step Runge–Kutta method of order 4 with step 1e-3 days (its own error is
// estimated by repeating with step 2e-3). Because the plugin's binomial draws are 1000 uniforms u
// per output compared with p = I/N, and the test can replay the host's stream, each simulated
// count brackets p between two known uniforms: over many simulations this pins the plugin's
// noise-free p_j to within a few 1e-6, with no statistical tolerance.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include <fsbi/plugin.hpp>
#include <fsbi/prior.hpp>
#include <fsbi/random.hpp>

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr double kN = 1e6;
constexpr int kTrials = 1000;

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/sir.so"; }

std::shared_ptr<const fsbi::Simulator> open(const fsbi::SimulatorOptions& options = {}) {
  return fsbi::Simulator::create(fsbi::Plugin::load(plugin_path()), options);
}

struct Batch {
  std::vector<double> x;
  std::vector<std::uint8_t> ok;
  std::string first_error;
};

Batch simulate_at(const fsbi::Simulator& sim, std::uint64_t seed, const std::vector<double>& theta,
                  std::size_t n, std::uint64_t index_begin = 0) {
  std::vector<std::uint64_t> index(n);
  std::iota(index.begin(), index.end(), index_begin);
  std::vector<std::uint32_t> attempt(n, 0);
  std::vector<double> thetas(2 * n);
  for (std::size_t i = 0; i < n; ++i) std::copy(theta.begin(), theta.end(), thetas.begin() + 2 * i);
  Batch b{std::vector<double>(10 * n), std::vector<std::uint8_t>(n, 7), ""};
  const auto res = sim.create_instance()->simulate(seed, index, attempt, thetas, b.x, b.ok);
  EXPECT_FALSE(res.call_failed) << res.first_error;
  b.first_error = res.first_error;
  return b;
}

using fsbi::test::read_csv_row;

// I(t_j)/N at t_j = 17 j, j = 0..9, by classical RK4 with a fixed step h (17/h an integer).
std::array<double, 10> reference_fraction(double beta, double gamma, double h) {
  using V = std::array<double, 3>;
  auto f = [&](const V& u) {
    const double inf = beta * u[0] * u[1] / kN, rec = gamma * u[1];
    return V{-inf, inf - rec, rec};
  };
  auto axpy = [](const V& u, double a, const V& k) { return V{u[0] + a * k[0], u[1] + a * k[1], u[2] + a * k[2]}; };
  V u{kN - 1, 1, 0};
  std::array<double, 10> out{};
  out[0] = u[1] / kN;
  const long steps = std::lround(17.0 / h);
  for (int j = 1; j < 10; ++j) {
    for (long s = 0; s < steps; ++s) {
      const V k1 = f(u), k2 = f(axpy(u, h / 2, k1)), k3 = f(axpy(u, h / 2, k2)), k4 = f(axpy(u, h, k3));
      for (int c = 0; c < 3; ++c) u[c] += h / 6 * (k1[c] + 2 * k2[c] + 2 * k3[c] + k4[c]);
    }
    out[static_cast<std::size_t>(j)] = u[1] / kN;
  }
  return out;
}

// The reference at step 1e-3, after checking that halving the step's effect is negligible.
std::array<double, 10> reference(double beta, double gamma) {
  const auto fine = reference_fraction(beta, gamma, 1e-3), coarse = reference_fraction(beta, gamma, 2e-3);
  double worst = 0;
  for (int j = 0; j < 10; ++j) worst = std::max(worst, std::abs(fine[j] - coarse[j]));
  std::printf("  reference RK4: max |p(h=1e-3) - p(h=2e-3)| = %.1e\n", worst);
  EXPECT_LT(worst, 1e-9);
  return fine;
}

}  // namespace

TEST(Sir, Metadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "sir");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("sir"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "");
  auto sim = fsbi::Simulator::create(plugin);
  EXPECT_EQ(sim->parameter_names(), (std::vector<std::string>{"parameter_1", "parameter_2"}));
  ASSERT_EQ(sim->data_dim(), 10);
  EXPECT_EQ(sim->data_names().front(), "data_1");
  EXPECT_EQ(sim->data_names().back(), "data_10");
  EXPECT_TRUE(sim->has_likelihood_score());
  ASSERT_TRUE(sim->default_prior().has_value());
  EXPECT_EQ(*sim->default_prior(), "lognormal([-0.916290731874155, -2.0794415416798357], [0.5, 0.2])");
  // μ are log 0.4 and log 0.125 to the last bit; the spec is in canonical form.
  EXPECT_EQ(std::stod("-0.916290731874155"), std::log(0.4));
  EXPECT_EQ(std::stod("-2.0794415416798357"), std::log(0.125));
  EXPECT_EQ(fsbi::parse_prior(*sim->default_prior(), 2)->spec(), *sim->default_prior());
}

TEST(Sir, RejectsAnyOption) {
  try {
    open({{"N", "1000"}});
    FAIL() << "an option was accepted";
  } catch (const fsbi::PluginError& e) {
    const std::string msg = e.what();
    std::printf("  %s\n", msg.c_str());
    EXPECT_NE(msg.find("unknown option 'N'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("takes no options"), std::string::npos) << msg;
  }
}

// Replays the host stream: x_j must be #{u < p_j} for the documented 10 x 1000 uniforms. The
// brackets [largest u counted, smallest u not counted] over all simulations must contain the
// independent reference p_j, and be narrow.
TEST(Sir, NoiseFreeTrajectoryMatchesAnIndependentSolution) {
  auto sim = open();
  const std::vector<std::vector<double>> thetas{{0.4, 0.125}, {0.61479264, 0.19172086}, {1.3, 0.09}};
  std::uint64_t seed = fsbi::test::announce_seed("sir trajectory", 7701);
  for (const auto& theta : thetas) {
    SCOPED_TRACE("theta = (" + std::to_string(theta[0]) + ", " + std::to_string(theta[1]) + ")");
    const auto p_ref = reference(theta[0], theta[1]);
    constexpr std::size_t n = 1000;
    const Batch b = simulate_at(*sim, seed, theta, n);
    ASSERT_EQ(std::count(b.ok.begin(), b.ok.end(), 1), static_cast<std::ptrdiff_t>(n)) << b.first_error;
    std::array<double, 10> lo{}, hi{};
    lo.fill(0.0);
    hi.fill(1.0);
    std::array<double, kTrials> u{};
    for (std::size_t i = 0; i < n; ++i) {
      fsbi::CounterRng rng(seed, fsbi::Stream::simulator, i, 0);
      for (std::size_t j = 0; j < 10; ++j) {
        for (double& v : u) v = rng.uniform();
        double below = 0.0, above = 1.0;
        for (double v : u) {
          if (v < p_ref[j]) below = std::max(below, v);
          else above = std::min(above, v);
        }
        // The count the reference p gives, and the count the plugin gave.
        const double count = static_cast<double>(
            std::count_if(u.begin(), u.end(), [&](double v) { return v < p_ref[j]; }));
        ASSERT_EQ(b.x[10 * i + j], count) << "simulation " << i << ", output " << j << ", p_ref "
                                          << p_ref[j] << " (nearest uniforms " << below << ", " << above << ")";
        // In order, the plugin's count k says p ∈ (u_(k), u_(k+1)] (k-th and k+1-th smallest).
        std::array<double, kTrials> order = u;
        const auto k = static_cast<std::size_t>(b.x[10 * i + j]);
        if (k < kTrials) {
          std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end());
          hi[j] = std::min(hi[j], order[k]);
        }
        if (k > 0) lo[j] = std::max(lo[j], *std::max_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k)));
      }
    }
    for (std::size_t j = 0; j < 10; ++j) {
      std::printf("  t = %3zu: p_ref %.9f, plugin's p in (%.9f, %.9f], width %.1e\n", 17 * j, p_ref[j], lo[j],
                  hi[j], hi[j] - lo[j]);
      EXPECT_GT(p_ref[j], lo[j]);
      EXPECT_LE(p_ref[j], hi[j]);
      EXPECT_LT(hi[j] - lo[j], 1e-5);
    }
    seed += 1;
  }
}

// Counts are Binomial(1000, p_j): mean 1000 p_j and variance 1000 p_j (1 − p_j).
TEST(Sir, CountsAreBinomial) {
  const std::uint64_t seed = fsbi::test::announce_seed("sir moments", 7702);
  const std::vector<double> theta{0.5, 0.15};
  const auto p = reference(theta[0], theta[1]);
  constexpr std::size_t n = 10000;
  const Batch b = simulate_at(*open(), seed, theta, n, 1u << 20);
  ASSERT_EQ(std::count(b.ok.begin(), b.ok.end(), 1), static_cast<std::ptrdiff_t>(n)) << b.first_error;
  const double nn = n;
  for (std::size_t j = 0; j < 10; ++j) {
    double m = 0, v = 0;
    for (std::size_t i = 0; i < n; ++i) m += b.x[10 * i + j] / nn;
    for (std::size_t i = 0; i < n; ++i) v += (b.x[10 * i + j] - m) * (b.x[10 * i + j] - m) / (nn - 1);
    const double mean = kTrials * p[j], var = kTrials * p[j] * (1 - p[j]);
    // se of the variance from the binomial's fourth central moment μ4 = var(1 + 3(n−2)p(1−p)).
    const double mu4 = var * (1 + 3 * (kTrials - 2) * p[j] * (1 - p[j]));
    const double se_mean = std::sqrt(var / nn), se_var = std::sqrt((mu4 - var * var) / nn);
    std::printf("  t = %3zu: mean %.3f (binomial %.3f, se %.1e)  var %.3f (binomial %.3f, se %.1e)\n", 17 * j,
                m, mean, se_mean, v, var, se_var);
    EXPECT_NEAR(m, mean, 5 * se_mean + 1e-12);
    EXPECT_NEAR(v, var, 5 * se_var + 1e-12);
  }
}

// Failures are reported per simulation with a reason: a non-finite θ, and a rate so large that
// the explicit solver cannot cross the stiff phase within its step budget.
TEST(Sir, FailuresAreReportedWithAReason) {
  const std::uint64_t seed = fsbi::test::announce_seed("sir failures", 7703);
  auto sim = open();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Batch b = simulate_at(*sim, seed, {nan, 0.1}, 1);
  EXPECT_EQ(b.ok[0], 0);
  std::printf("  NaN beta -> %s\n", b.first_error.c_str());
  EXPECT_NE(b.first_error.find("parameters must be finite"), std::string::npos) << b.first_error;
  b = simulate_at(*sim, seed, {1e9, 0.1}, 1);
  EXPECT_EQ(b.ok[0], 0);
  std::printf("  beta = 1e9 -> %s\n", b.first_error.c_str());
  EXPECT_NE(b.first_error.find("sir: the ODE solver failed at beta = 1000000000"), std::string::npos)
      << b.first_error;
  // A well-posed θ outside the prior (negative rates) still simulates, as in sbibm.
  b = simulate_at(*sim, seed, {-0.2, 0.1}, 1);
  EXPECT_EQ(b.ok[0], 1) << b.first_error;
}

// sbibm's observations at their true θ: every count within the bulk of Binomial(1000, p_j)
// (5 sd, plus 1 for the discreteness), and Σ (x − np)²/(np(1−p)) over all counts where
// np(1−p) ≥ 1 is about χ² with that many degrees of freedom.
TEST(Sir, SbibmObservationsHavePlausibleLikelihood) {
  double chi2 = 0;
  int terms = 0, found = 0;
  for (int obs = 1; obs <= 10; ++obs) {
    const std::string dir = fsbi::test::shared_dir() + "/sbibm/sir/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) continue;
    ++found;
    const auto theta = read_csv_row(dir + "/true_parameters.csv");
    const auto xo = read_csv_row(dir + "/observation.csv");
    ASSERT_EQ(theta.size(), 2u);
    ASSERT_EQ(xo.size(), 10u);
    const auto p = reference_fraction(theta[0], theta[1], 1e-3);
    std::printf("  obs_%d:", obs);
    for (std::size_t j = 0; j < 10; ++j) {
      const double mean = kTrials * p[j], var = mean * (1 - p[j]);
      std::printf(" %g/%.1f", xo[j], mean);
      EXPECT_LE(std::abs(xo[j] - mean), 5 * std::sqrt(var) + 1) << "obs_" << obs << " output " << j;
      if (var >= 1) {
        chi2 += (xo[j] - mean) * (xo[j] - mean) / var;
        ++terms;
      }
    }
    std::printf("\n");
  }
  if (found == 0) GTEST_SKIP() << "sbibm data not found under " << fsbi::test::shared_dir();
  std::printf("  chi2 %.2f on %d counts\n", chi2, terms);
  EXPECT_NEAR(chi2, terms, 5 * std::sqrt(2.0 * terms));
}

// ∇θ log p(x|θ) from the plugin's sensitivity equations against central differences of
// Σ_j x_j log p_j + (1000 − x_j) log(1 − p_j) with p_j from the independent RK4 solution: at an
// epidemic (counts simulated by the plugin itself) and at a fading outbreak (R0 < 1, p_j tiny,
// one late count of 1, where x_j/p_j dominates).
TEST(Sir, LikelihoodScoreMatchesCentralDifferences) {
  const std::uint64_t seed = fsbi::test::announce_seed("sir likelihood score", 4417);
  auto sim = open();
  const std::vector<std::vector<double>> thetas{{0.6, 0.12}, {0.3, 0.1}, {0.11, 0.125}};
  double worst = 0;
  for (std::size_t c = 0; c < thetas.size(); ++c) {
    const std::vector<double>& theta = thetas[c];
    std::vector<double> x;
    if (c + 1 < thetas.size()) {
      const Batch b = simulate_at(*sim, seed, theta, 1);
      ASSERT_EQ(b.ok[0], 1) << b.first_error;
      x = b.x;
    } else {
      x.assign(10, 0.0);
      x[3] = 1;  // one infected person counted at t = 51
    }
    auto log_lik = [&](const std::vector<double>& th) {
      const auto p = reference_fraction(th[0], th[1], 2e-3);
      double a = 0;
      for (std::size_t j = 0; j < 10; ++j) a += x[j] * std::log(p[j]) + (kTrials - x[j]) * std::log1p(-p[j]);
      return a;
    };
    worst = std::max(worst, fsbi::test::expect_score_matches_central_differences(
                                *sim, theta, x, log_lik, {.size = 1e-5, .relative = true}, 1e-5, 10.0));
  }
  std::printf("  worst |score - central difference| / max(10, |cd|) = %.2e (bound 1e-5)\n", worst);
}
