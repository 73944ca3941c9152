// Priors over θ ∈ R^d: sampling, log-density and its gradient ∇θ log π (which score matching
// needs), and a text spec that round-trips (what `--prior` takes and what files store).
//
// Spec grammar (docs/priors.md); a scalar argument is broadcast to all d components, a list
// gives one value per component:
//   uniform(low, high)               box: θ_i ~ U(low_i, high_i)
//   normal(mean, sd)                 diagonal Gaussian
//   mvnormal([m1,...], [[c11,...],...])  Gaussian with full covariance
//   lognormal(mu, sigma)             log θ_i ~ N(mu_i, sigma_i²)
// e.g. "uniform(-1, 1)", "normal([0, 1], [1, 0.5])", "lognormal([-0.9, -2.1], [0.5, 0.2])".
#pragma once

#include "fsbi/random.hpp"

#include <Eigen/Core>

#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fsbi {

// A malformed or inconsistent prior spec; the message names the spec and what to fix.
class PriorSpecError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Prior {
 public:
  virtual ~Prior() = default;

  int dim() const { return dim_; }

  // θ ← one draw. Consumes a fixed number of draws from `rng` for a given prior and d.
  virtual void sample(CounterRng& rng, std::span<double> theta) const = 0;

  // log π(θ), normalised; -inf outside the support.
  virtual double log_density(std::span<const double> theta) const = 0;

  // grad ← ∇θ log π(θ). Inside the support only (the caller checks in_support first);
  // zero for a box.
  virtual void grad_log_density(std::span<const double> theta, std::span<double> grad) const = 0;

  virtual bool in_support(std::span<const double> theta) const = 0;

  // Canonical spec; parse_prior(spec(), dim()) gives an equal prior. Numbers are printed with
  // enough digits to round-trip doubles exactly.
  virtual std::string spec() const = 0;

  // "uniform", "normal", "mvnormal" or "lognormal".
  virtual std::string_view kind() const = 0;

  // Per-component support bounds (±inf where unbounded, 0 as lower bound of a log-normal).
  virtual Eigen::VectorXd lower_bounds() const = 0;
  virtual Eigen::VectorXd upper_bounds() const = 0;

  // The Gaussian behind a prior in its natural unconstrained coordinates: N(mean, covariance) of
  // θ for normal and mvnormal, of log θ for lognormal; nullopt for a box. Training uses it for
  // closed-form smoothed prior scores.
  struct GaussianForm {
    Eigen::VectorXd mean;
    Eigen::MatrixXd covariance;
  };
  virtual std::optional<GaussianForm> gaussian_form() const { return std::nullopt; }

 protected:
  explicit Prior(int dim) : dim_(dim) {}

 private:
  int dim_;
};

// Parses a spec for a d-dimensional parameter. Throws PriorSpecError naming the spec, the
// position and the fix: a list of the wrong length, low ≥ high, sd ≤ 0, a covariance that is not
// symmetric positive definite, an unknown family, trailing text.
std::unique_ptr<Prior> parse_prior(std::string_view spec, int dim);

}  // namespace fsbi
