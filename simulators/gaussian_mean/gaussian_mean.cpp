// gaussian_mean: the mean of a unit-variance Gaussian, the reference model for maximum
// likelihood and Fisher information (its MLE is the sample mean, its Fisher information I_dim).
//
//   θ ∈ R^dim, x ∈ R^dim (option dim, default 2), prior θ ~ N(0, 10²·I).
//   x = θ + ε,  ε ~ N(0, I_dim)
//
// Exactly dim standard-normal draws per simulation (one fill_normal of length dim).
// Provides the analytic likelihood score ∇θ log p(x|θ) = x − θ ("fsbi.likelihood-score/1").
// See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace {

class GaussianMean {
 public:
  static constexpr const char* options_help =
      "dim=INT  number of parameters and data dimensions (default 2)";

  explicit GaussianMean(const fsbi::sdk::Options& options)
      : dim_(static_cast<std::size_t>(options.get_int("dim", 2, 1, 1000000))), eps_(dim_) {}

  fsbi::sdk::Info info() const {
    fsbi::sdk::Info inf;
    for (std::size_t i = 1; i <= dim_; ++i) {
      inf.parameter_names.push_back("parameter_" + std::to_string(i));
      inf.data_names.push_back("data_" + std::to_string(i));
    }
    inf.default_prior = "normal(0, 10)";
    return inf;
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    rng.fill_normal(eps_);
    for (std::size_t i = 0; i < dim_; ++i) x[i] = theta[i] + eps_[i];
  }

  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    for (std::size_t i = 0; i < dim_; ++i) score[i] = x[i] - theta[i];
  }

 private:
  std::size_t dim_;
  std::vector<double> eps_;  // per-instance scratch
};

}  // namespace

FSBI_SIMULATOR(GaussianMean, "gaussian_mean", "1.0.0",
               "x = theta + N(0, I): the mean of a unit-variance Gaussian, dim 2 by default, prior N(0, 10^2 I)")
