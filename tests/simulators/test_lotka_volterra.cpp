// The bundled lotka_volterra simulator, loaded as the real plugin through the host API, checked
// against sbibm's definition (../shared/sbibm/TASKS.md): (u, v)(0) = (30, 1),
// du/dt = αu − βuv, dv/dt = −γv + δuv; s = (u(t_0..t_9), v(t_0..t_9)) at t_j = 2.1 j;
// x_i = clamp(s_i, 1e-10, 1e4)·exp(0.1 ε_i).
//
// The noise-free trajectory is recovered exactly from the plugin's output: the test replays the
// host's stream to get the 20 ε_i, and s_i = x_i·exp(−0.1 ε_i). It is compared with
// * an independent solution: the classical fixed-step Runge–Kutta method of order 4, step 1e-4
//   (its own error estimated by repeating with step 2e-4);
// * the conserved quantity of the model, H = δu − γ log u + βv − α log v;
// * a closed form: with β = δ = 0, u = 30 e^{αt}, v = e^{−γt} (this case also hits both clamps).
// The plugin solves to tolerance 1e-8 per step; its global error measured here is at most about
// 3e-7 relative, so the trajectory checks use 1e-6.
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

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/lotka_volterra.so"; }

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
  std::vector<double> thetas(4 * n);
  for (std::size_t i = 0; i < n; ++i) std::copy(theta.begin(), theta.end(), thetas.begin() + 4 * i);
  Batch b{std::vector<double>(20 * n), std::vector<std::uint8_t>(n, 7), ""};
  const auto res = sim.create_instance()->simulate(seed, index, attempt, thetas, b.x, b.ok);
  EXPECT_FALSE(res.call_failed) << res.first_error;
  b.first_error = res.first_error;
  return b;
}

using fsbi::test::read_csv_row;

// (u(t_0..t_9), v(t_0..t_9)), t_j = 2.1 j, by classical RK4 with fixed step h (2.1/h an integer).
std::array<double, 20> rk4(const std::vector<double>& th, double h) {
  using V = std::array<double, 2>;
  auto f = [&](const V& s) {
    return V{th[0] * s[0] - th[1] * s[0] * s[1], -th[2] * s[1] + th[3] * s[0] * s[1]};
  };
  V s{30.0, 1.0};
  std::array<double, 20> out{};
  out[0] = s[0];
  out[10] = s[1];
  const long steps = std::lround(2.1 / h);
  for (int j = 1; j < 10; ++j) {
    for (long k = 0; k < steps; ++k) {
      const V k1 = f(s);
      const V k2 = f({s[0] + h / 2 * k1[0], s[1] + h / 2 * k1[1]});
      const V k3 = f({s[0] + h / 2 * k2[0], s[1] + h / 2 * k2[1]});
      const V k4 = f({s[0] + h * k3[0], s[1] + h * k3[1]});
      for (int c = 0; c < 2; ++c) s[c] += h / 6 * (k1[c] + 2 * k2[c] + 2 * k3[c] + k4[c]);
    }
    out[static_cast<std::size_t>(j)] = s[0];
    out[static_cast<std::size_t>(10 + j)] = s[1];
  }
  return out;
}

std::array<double, 20> reference(const std::vector<double>& th) {
  const auto fine = rk4(th, 1e-4), coarse = rk4(th, 2e-4);
  double worst = 0;
  for (int i = 0; i < 20; ++i) worst = std::max(worst, std::abs(fine[i] - coarse[i]) / std::abs(fine[i]));
  std::printf("  reference RK4: max relative |s(h=1e-4) - s(h=2e-4)| = %.1e\n", worst);
  EXPECT_LT(worst, 1e-10);
  return fine;
}

// s_i = x_i exp(−0.1 ε_i) for simulation `index`, ε replayed from the host stream.
std::array<double, 20> noise_free(const std::vector<double>& x, std::size_t row, std::uint64_t seed,
                                  std::uint64_t index) {
  fsbi::CounterRng rng(seed, fsbi::Stream::simulator, index, 0);
  std::array<double, 20> s{};
  for (std::size_t i = 0; i < 20; ++i) s[i] = x[20 * row + i] * std::exp(-0.1 * rng.normal());
  return s;
}

double clamp_solution(double s) { return std::clamp(s, 1e-10, 1e4); }

}  // namespace

TEST(LotkaVolterra, Metadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "lotka_volterra");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("lotka_volterra"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "");
  auto sim = fsbi::Simulator::create(plugin);
  EXPECT_EQ(sim->parameter_names(),
            (std::vector<std::string>{"parameter_1", "parameter_2", "parameter_3", "parameter_4"}));
  ASSERT_EQ(sim->data_dim(), 20);
  EXPECT_EQ(sim->data_names().front(), "data_1");
  EXPECT_EQ(sim->data_names().back(), "data_20");
  EXPECT_TRUE(sim->has_likelihood_score());
  ASSERT_TRUE(sim->default_prior().has_value());
  EXPECT_EQ(*sim->default_prior(), "lognormal([-0.125, -3, -0.125, -3], 0.5)");
  EXPECT_EQ(fsbi::parse_prior(*sim->default_prior(), 4)->spec(), *sim->default_prior());
}

TEST(LotkaVolterra, RejectsAnyOption) {
  try {
    open({{"days", "30"}});
    FAIL() << "an option was accepted";
  } catch (const fsbi::PluginError& e) {
    const std::string msg = e.what();
    std::printf("  %s\n", msg.c_str());
    EXPECT_NE(msg.find("unknown option 'days'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("takes no options"), std::string::npos) << msg;
  }
}

TEST(LotkaVolterra, NoiseFreeTrajectoryMatchesAnIndependentSolution) {
  auto sim = open();
  // The prior median, sbibm's obs_1 true θ, and a fast oscillation.
  const std::vector<std::vector<double>> thetas{{std::exp(-0.125), std::exp(-3.0), std::exp(-0.125), std::exp(-3.0)},
                                                {0.6859157, 0.10761319, 0.88789904, 0.116794825},
                                                {1.9, 0.12, 1.4, 0.03}};
  std::uint64_t seed = fsbi::test::announce_seed("lotka_volterra trajectory", 8801);
  for (const auto& th : thetas) {
    SCOPED_TRACE("theta = (" + std::to_string(th[0]) + ", " + std::to_string(th[1]) + ", " +
                 std::to_string(th[2]) + ", " + std::to_string(th[3]) + ")");
    const auto ref = reference(th);
    const Batch b = simulate_at(*sim, seed, th, 3, 40);
    ASSERT_EQ(std::count(b.ok.begin(), b.ok.end(), 1), 3) << b.first_error;
    double worst = 0, worst_h = 0;
    for (std::size_t row = 0; row < 3; ++row) {
      const auto s = noise_free(b.x, row, seed, 40 + row);
      const double h0 = th[3] * s[0] - th[2] * std::log(s[0]) + th[1] * s[10] - th[0] * std::log(s[10]);
      for (std::size_t i = 0; i < 20; ++i) {
        const double rel = std::abs(s[i] - clamp_solution(ref[i])) / clamp_solution(ref[i]);
        EXPECT_LT(rel, 1e-6) << "output " << i << ": " << s[i] << " vs " << ref[i];
        worst = std::max(worst, rel);
      }
      for (std::size_t j = 0; j < 10; ++j) {
        const double h = th[3] * s[j] - th[2] * std::log(s[j]) + th[1] * s[10 + j] - th[0] * std::log(s[10 + j]);
        worst_h = std::max(worst_h, std::abs(h - h0) / std::abs(h0));
      }
    }
    std::printf("  max relative |s - s_ref| = %.2e, max relative drift of H = %.2e\n", worst, worst_h);
    EXPECT_LT(worst_h, 1e-6);
    seed += 1;
  }
}

TEST(LotkaVolterra, ClosedFormAndClamps) {
  const std::uint64_t seed = fsbi::test::announce_seed("lotka_volterra closed form", 8802);
  const std::vector<double> th{1.0, 0.0, 1.5, 0.0};  // u = 30 e^t, v = e^{−1.5 t}
  const Batch b = simulate_at(*open(), seed, th, 1);
  ASSERT_EQ(b.ok[0], 1) << b.first_error;
  const auto s = noise_free(b.x, 0, seed, 0);
  int clamped = 0;
  for (std::size_t j = 0; j < 10; ++j) {
    const double t = 2.1 * static_cast<double>(j);
    const double u = clamp_solution(30 * std::exp(t)), v = clamp_solution(std::exp(-1.5 * t));
    clamped += (u == 1e4) + (v == 1e-10);
    EXPECT_NEAR(s[j], u, 1e-6 * u) << "u at t = " << t;
    EXPECT_NEAR(s[10 + j], v, 1e-6 * v) << "v at t = " << t;
    std::printf("  t = %4.1f: u %.9g (exact, clamped %.9g)  v %.9g (exact, clamped %.9g)\n", t, s[j], u,
                s[10 + j], v);
  }
  EXPECT_EQ(clamped, 9);  // u > 1e4 for t ≥ 6.3 (7 times), v < 1e-10 for t ≥ 16.8 (2 times)
}

// log x_i − log clamp(s_i) ~ N(0, 0.1²) independently.
TEST(LotkaVolterra, LogNormalNoise) {
  const std::uint64_t seed = fsbi::test::announce_seed("lotka_volterra noise", 8803);
  const std::vector<double> th{0.9, 0.05, 0.8, 0.06};
  const auto ref = reference(th);
  constexpr std::size_t n = 20000;
  const Batch b = simulate_at(*open(), seed, th, n);
  ASSERT_EQ(std::count(b.ok.begin(), b.ok.end(), 1), static_cast<std::ptrdiff_t>(n)) << b.first_error;
  const double nn = n, se_mean = 0.1 / std::sqrt(nn), se_var = 0.01 * std::sqrt(2 / nn);
  double worst_mean = 0, worst_var = 0, corr01 = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    double m = 0, v = 0;
    for (std::size_t r = 0; r < n; ++r) m += std::log(b.x[20 * r + i] / ref[i]) / nn;
    for (std::size_t r = 0; r < n; ++r) {
      const double e = std::log(b.x[20 * r + i] / ref[i]) - m;
      v += e * e / (nn - 1);
    }
    EXPECT_NEAR(m, 0.0, 5 * se_mean) << i;
    EXPECT_NEAR(v, 0.01, 5 * se_var) << i;
    worst_mean = std::max(worst_mean, std::abs(m));
    worst_var = std::max(worst_var, std::abs(v - 0.01));
  }
  for (std::size_t r = 0; r < n; ++r)
    corr01 += std::log(b.x[20 * r] / ref[0]) * std::log(b.x[20 * r + 10] / ref[10]) / (nn * 0.01);
  std::printf("  max |mean log ratio| %.1e (se %.1e), max |var - 0.01| %.1e (se %.1e), corr(u0, v0) %.3f\n",
              worst_mean, se_mean, worst_var, se_var, corr01);
  EXPECT_NEAR(corr01, 0.0, 5 / std::sqrt(nn));
}

TEST(LotkaVolterra, FailuresAreReportedWithAReason) {
  const std::uint64_t seed = fsbi::test::announce_seed("lotka_volterra failures", 8804);
  auto sim = open();
  Batch b = simulate_at(*sim, seed, {1.0, std::numeric_limits<double>::infinity(), 1.0, 0.1}, 1);
  EXPECT_EQ(b.ok[0], 0);
  std::printf("  beta = inf -> %s\n", b.first_error.c_str());
  EXPECT_NE(b.first_error.find("lotka_volterra: parameters must be finite"), std::string::npos) << b.first_error;
  // β < 0: du/dt = u + uv with v growing too; the solution blows up in finite time.
  b = simulate_at(*sim, seed, {1.0, -1.0, 1.0, 1.0}, 1);
  EXPECT_EQ(b.ok[0], 0);
  std::printf("  beta = -1 -> %s\n", b.first_error.c_str());
  EXPECT_EQ(b.first_error.rfind("lotka_volterra: the ODE ", 0), 0u) << b.first_error;
}

// sbibm's observations at their true θ: (log x_o − log clamp(s))/0.1 are 20 standard normals per
// observation, so their squares sum to about χ²(200) over the 10; none beyond 5 sd.
TEST(LotkaVolterra, SbibmObservationsHavePlausibleLikelihood) {
  double chi2 = 0;
  int terms = 0;
  for (int obs = 1; obs <= 10; ++obs) {
    const std::string dir = fsbi::test::shared_dir() + "/sbibm/lotka_volterra/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) continue;
    const auto theta = read_csv_row(dir + "/true_parameters.csv");
    const auto xo = read_csv_row(dir + "/observation.csv");
    ASSERT_EQ(theta.size(), 4u);
    ASSERT_EQ(xo.size(), 20u);
    const auto s = rk4(theta, 1e-4);
    double worst = 0, c = 0;
    for (std::size_t i = 0; i < 20; ++i, ++terms) {
      const double z = std::log(xo[i] / clamp_solution(s[i])) / 0.1;
      EXPECT_LT(std::abs(z), 5.0) << "obs_" << obs << " output " << i;
      worst = std::max(worst, std::abs(z));
      c += z * z;
    }
    std::printf("  obs_%d: sum z^2 %.2f (chi2(20)), max |z| %.2f\n", obs, c, worst);
    chi2 += c;
  }
  if (terms == 0) GTEST_SKIP() << "sbibm data not found under " << fsbi::test::shared_dir();
  std::printf("  chi2 %.2f on %d terms\n", chi2, terms);
  EXPECT_NEAR(chi2, terms, 5 * std::sqrt(2.0 * terms));
}

// ∇θ log p(x|θ) from the plugin's sensitivity equations against central differences of
// −Σ_i (log x_i − log s_i)²/(2·0.1²) with s from the independent RK4 solution, at two parameter
// sets (the prior's centre and a faster cycle), x simulated by the plugin there.
TEST(LotkaVolterra, LikelihoodScoreMatchesCentralDifferences) {
  const std::uint64_t seed = fsbi::test::announce_seed("lotka_volterra likelihood score", 4418);
  auto sim = open();
  double worst = 0;
  for (const std::vector<double>& theta : {std::vector<double>{0.88, 0.05, 0.88, 0.05},
                                           std::vector<double>{1.3, 0.08, 0.6, 0.03}}) {
    const Batch b = simulate_at(*sim, seed, theta, 1);
    ASSERT_EQ(b.ok[0], 1) << b.first_error;
    const std::vector<double>& x = b.x;
    auto log_lik = [&](const std::vector<double>& th) {
      const auto s = rk4(th, 2e-4);
      double a = 0;
      for (std::size_t i = 0; i < 20; ++i) {
        const double r = std::log(x[i]) - std::log(clamp_solution(s[i]));
        a -= r * r / (2 * 0.01);
      }
      return a;
    };
    worst = std::max(worst, fsbi::test::expect_score_matches_central_differences(
                                *sim, theta, x, log_lik, {.size = 1e-5, .relative = true}, 1e-5, 10.0));
  }
  std::printf("  worst |score - central difference| / max(10, |cd|) = %.2e (bound 1e-5)\n", worst);
}
