// gaussian_mixture: sbibm's "gaussian_mixture" task (sbibm/tasks/gaussian_mixture/task.py,
// GaussianMixture(dim=2, prior_bound=10)), simulated in float64.
//
//   θ ∈ R², x ∈ R², prior θ_i ~ U(-10, 10) independently.
//   k ~ Categorical(0.5, 0.5), one draw shared by both coordinates;
//   x = θ + σ_k ε, ε ~ N(0, I_2), σ_0 = 1, σ_1 = 0.1.
//   So p(x|θ) = 0.5 N(x; θ, I) + 0.5 N(x; θ, 0.01 I).
//
// Exactly three draws per simulation, in this order: one uniform u (k = 0 if u < 0.5, else
// k = 1), then two standard normals (ε_0, ε_1). Never fails for finite θ.
// Provides the analytic likelihood score ("fsbi.likelihood-score/1"). See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <span>

namespace {

constexpr std::array<double, 2> kScale{1.0, 0.1};  // σ_k, standard deviations

class GaussianMixture {
 public:
  explicit GaussianMixture(const fsbi::sdk::Options& /*options*/) {}  // no options: any is unknown

  fsbi::sdk::Info info() const {
    return {.parameter_names = {"parameter_1", "parameter_2"},
            .data_names = {"data_1", "data_2"},
            .default_prior = "uniform(-10, 10)"};
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    const double sigma = rng.uniform() < 0.5 ? kScale[0] : kScale[1];
    const double e0 = rng.normal();
    const double e1 = rng.normal();
    x[0] = theta[0] + sigma * e0;
    x[1] = theta[1] + sigma * e1;
  }

  // ∇θ log p(x|θ) = Σ_k w_k (x − θ)/σ_k², w_k = the posterior weight of component k given x
  // (computed in log space: log N_k = −2 log σ_k − |x − θ|²/(2σ_k²) + const).
  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    const double d0 = x[0] - theta[0], d1 = x[1] - theta[1];
    const double q = d0 * d0 + d1 * d1;
    std::array<double, 2> log_n{};
    for (int k = 0; k < 2; ++k) {
      const double s2 = kScale[k] * kScale[k];
      log_n[k] = -std::log(s2) - q / (2 * s2);
    }
    const double top = std::max(log_n[0], log_n[1]);
    const double e0 = std::exp(log_n[0] - top), e1 = std::exp(log_n[1] - top);
    const double w0 = e0 / (e0 + e1), w1 = e1 / (e0 + e1);
    const double factor = w0 / (kScale[0] * kScale[0]) + w1 / (kScale[1] * kScale[1]);
    score[0] = factor * d0;
    score[1] = factor * d1;
  }
};

}  // namespace

FSBI_SIMULATOR(GaussianMixture, "gaussian_mixture", "1.0.0",
               "sbibm task gaussian_mixture: x = theta + N(0, I) or N(0, 0.01 I) with probability 1/2 each, theta and x in R^2")
