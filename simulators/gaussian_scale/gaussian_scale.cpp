// gaussian_scale: the variance of a zero-mean Gaussian, the reference model for a scale
// parameter (its score is quadratic in x, so a score linear in x cannot represent it).
//
//   θ = v > 0 (one parameter), x ∈ R^n (option n, default 1): x_j = √v·ε_j, ε_j ~ N(0, 1)
//   independently; prior log v ~ N(0, 1) ("lognormal(0, 1)").
//
// Exactly n standard-normal draws per simulation (one fill_normal of length n).
// Provides the analytic likelihood score ∂/∂v log p(x|v) = Σ_j (x_j² − v)/(2v²)
// ("fsbi.likelihood-score/1"). See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

class GaussianScale {
 public:
  static constexpr const char* options_help =
      "n=INT  i.i.d. values per data set, i.e. data dimensions (default 1)";

  explicit GaussianScale(const fsbi::sdk::Options& options)
      : n_(static_cast<std::size_t>(options.get_int("n", 1, 1, 1000000))), eps_(n_) {}

  fsbi::sdk::Info info() const {
    fsbi::sdk::Info inf;
    inf.parameter_names = {"variance"};
    for (std::size_t i = 1; i <= n_; ++i) inf.data_names.push_back("data_" + std::to_string(i));
    inf.default_prior = "lognormal(0, 1)";
    return inf;
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    if (!(theta[0] > 0)) throw std::invalid_argument("the variance must be positive");
    rng.fill_normal(eps_);
    const double sd = std::sqrt(theta[0]);
    for (std::size_t i = 0; i < n_; ++i) x[i] = sd * eps_[i];
  }

  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    const double v = theta[0];
    double s = 0;
    for (std::size_t i = 0; i < n_; ++i) s += (x[i] * x[i] - v) / (2 * v * v);
    score[0] = s;
  }

 private:
  std::size_t n_;
  std::vector<double> eps_;  // per-instance scratch
};

}  // namespace

FSBI_SIMULATOR(GaussianScale, "gaussian_scale", "1.0.0",
               "x ~ N(0, v): the variance v of a zero-mean Gaussian (a scale parameter), prior lognormal(0, 1)")
