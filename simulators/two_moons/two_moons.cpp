// two_moons: sbibm's "two_moons" task (sbibm/tasks/two_moons/task.py), simulated in float64.
//
//   θ ∈ R², x ∈ R², prior θ_i ~ U(-1, 1) independently.
//   a ~ U(-π/2, π/2),  r ~ N(0.1, 0.01²),  p = (r cos a + 0.25, r sin a)
//   x0 = p0 - |θ0 + θ1| / √2,  x1 = p1 + (θ1 - θ0) / √2
//
// Exactly two draws per simulation, in this order: one uniform (a), one normal (r).
// See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <cmath>
#include <numbers>
#include <span>

namespace {

class TwoMoons {
 public:
  explicit TwoMoons(const fsbi::sdk::Options& /*options*/) {}  // no options: any is unknown

  fsbi::sdk::Info info() const {
    return {.parameter_names = {"parameter_1", "parameter_2"},
            .data_names = {"data_1", "data_2"},
            .default_prior = "uniform(-1, 1)"};
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    constexpr double pi = std::numbers::pi;
    constexpr double inv_sqrt2 = 1.0 / std::numbers::sqrt2;
    const double a = rng.uniform(-pi / 2, pi / 2);
    const double r = rng.normal(0.1, 0.01);
    const double p0 = r * std::cos(a) + 0.25;
    const double p1 = r * std::sin(a);
    x[0] = p0 - std::abs(theta[0] + theta[1]) * inv_sqrt2;
    x[1] = p1 + (theta[1] - theta[0]) * inv_sqrt2;
  }
};

}  // namespace

FSBI_SIMULATOR(TwoMoons, "two_moons", "1.0.0",
               "sbibm task two_moons: a crescent-shaped bimodal posterior, theta and x in R^2")
