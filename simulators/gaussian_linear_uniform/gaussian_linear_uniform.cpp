// gaussian_linear_uniform: sbibm's "gaussian_linear_uniform" task
// (sbibm/tasks/gaussian_linear_uniform/task.py, GaussianLinearUniform(dim=10, prior_bound=1.0,
// simulator_scale=0.1)), simulated in float64.
//
//   θ ∈ R^dim, x ∈ R^dim (option dim, default 10), prior θ_i ~ U(-1, 1) independently.
//   x = θ + √0.1·ε,  ε ~ N(0, I_dim)     (sbibm's simulator_scale 0.1 is a variance)
//
// Exactly dim standard-normal draws per simulation (one fill_normal of length dim).
// Provides the analytic likelihood score ∇θ log p(x|θ) = (x − θ)/0.1 ("fsbi.likelihood-score/1").
// See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr double kVariance = 0.1;  // sbibm's simulator_scale, passed as inverse(0.1·I) precision

class GaussianLinearUniform {
 public:
  static constexpr const char* options_help =
      "dim=INT  number of parameters and data dimensions (default 10)";

  explicit GaussianLinearUniform(const fsbi::sdk::Options& options)
      : dim_(static_cast<std::size_t>(options.get_int("dim", 10, 1, 1000000))),
        sd_(std::sqrt(kVariance)),
        eps_(dim_) {}

  fsbi::sdk::Info info() const {
    fsbi::sdk::Info inf;
    for (std::size_t i = 1; i <= dim_; ++i) {
      inf.parameter_names.push_back("parameter_" + std::to_string(i));
      inf.data_names.push_back("data_" + std::to_string(i));
    }
    inf.default_prior = "uniform(-1, 1)";
    return inf;
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    rng.fill_normal(eps_);
    for (std::size_t i = 0; i < dim_; ++i) x[i] = theta[i] + sd_ * eps_[i];
  }

  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    for (std::size_t i = 0; i < dim_; ++i) score[i] = (x[i] - theta[i]) / kVariance;
  }

 private:
  std::size_t dim_;
  double sd_;
  std::vector<double> eps_;  // per-instance scratch
};

}  // namespace

FSBI_SIMULATOR(GaussianLinearUniform, "gaussian_linear_uniform", "1.0.0",
               "sbibm task gaussian_linear_uniform: x = theta + N(0, 0.1 I), prior U(-1, 1)^dim, dim 10 by default")
