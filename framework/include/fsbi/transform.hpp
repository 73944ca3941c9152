// Coordinates for training: θ (constrained, what users see) ↔ u (unconstrained, where score
// matching happens) ↔ z (bounded, standardised network features of u), and standardisation of x.
//
// Why: integration by parts over θ needs π(θ)p(x|θ)s(θ,x) to vanish on the boundary of the
// parameter space; a uniform box has mass up to its faces, so training in θ is biased. In u the
// prior π_u(u) = π(T(u))·|dθ/du| decays at infinity and the identity holds (DESIGN §3,
// docs/training.md).
//
// Per coordinate j (all maps are elementwise):
//   box [a, b]  (uniform prior):   θ = a + (b − a)·σ(u),  σ the logistic function;
//                                 z = √3·tanh(u/2)  (= the box-standardised θ: unit variance
//                                 under the uniform prior, bounded, so the network flattens in
//                                 the tails and the prior governs there)
//   positive    (log-normal prior): θ = exp(u);           z = (u − m)/s
//   identity    (Gaussian priors):  θ = u;                z = (u − m)/s
// m, s are the mean and standard deviation of u over the training set (fit()).
//
// Batch layout: one sample per COLUMN (d × n).
#pragma once

#include "fsbi/prior.hpp"

#include <Eigen/Core>

#include <string>
#include <string_view>
#include <vector>

namespace fsbi {

enum class CoordinateMap { identity, box, positive };
std::string_view to_string(CoordinateMap m);
CoordinateMap parse_coordinate_map(std::string_view s);  // throws std::invalid_argument

class ParameterTransform {
 public:
  ParameterTransform() = default;
  // low/high are used by box coordinates only (which need finite low < high); one entry per
  // coordinate. Without any box coordinate both may be empty (then −inf/0 and +inf are stored).
  // Throws std::invalid_argument on mismatched sizes or a bad box.
  ParameterTransform(std::vector<CoordinateMap> maps, Eigen::VectorXd low, Eigen::VectorXd high);
  // The transform a prior calls for: box for uniform, positive for log-normal, identity for
  // normal and mvnormal.
  static ParameterTransform for_prior(const Prior& prior);

  int dim() const { return static_cast<int>(maps_.size()); }
  const std::vector<CoordinateMap>& maps() const { return maps_; }
  const Eigen::VectorXd& low() const { return low_; }
  const Eigen::VectorXd& high() const { return high_; }

  // θ → u. θ on a box face maps to ±inf: callers check is_finite; θ strictly inside is finite.
  // (θ outside a box, or ≤ 0 for a positive coordinate, gives NaN / −inf.)
  // Every method taking u or θ throws std::invalid_argument unless it has dim() rows.
  Eigen::MatrixXd to_unconstrained(const Eigen::MatrixXd& theta) const;
  // u → θ.
  Eigen::MatrixXd to_constrained(const Eigen::MatrixXd& u) const;
  // dθ/du, elementwise (d × n).
  Eigen::MatrixXd jacobian(const Eigen::MatrixXd& u) const;
  // log |det ∂θ/∂u| per sample (1 × n as a row vector).
  Eigen::RowVectorXd log_abs_det_jacobian(const Eigen::MatrixXd& u) const;
  // ∇u log|det ∂θ/∂u| (d × n): 0 identity, 1 positive, 1 − 2σ(u) = −tanh(u/2) box.
  Eigen::MatrixXd grad_log_abs_det_jacobian(const Eigen::MatrixXd& u) const;
  // log π_u(u) = log π(T(u)) + log|det ∂θ/∂u| per sample. For a uniform prior on exactly this
  // transform's boxes it is Σ log σ(u_i) + log σ(−u_i), computed without forming θ (finite for
  // any finite u).
  Eigen::RowVectorXd prior_log_density(const Prior& prior, const Eigen::MatrixXd& u) const;
  // ∇u log π_u(u) = (dθ/du) ⊙ ∇θ log π(T(u)) + ∇u log|dθ/du|  (d × n). For a uniform prior the
  // first term is 0 (no θ formed); otherwise Prior::grad_log_density per column.
  Eigen::MatrixXd prior_score(const Prior& prior, const Eigen::MatrixXd& u) const;
  // A score in u (∇u log p(x|T(u))) to the score in θ: s_θ = s_u / (dθ/du).
  Eigen::MatrixXd score_to_theta(const Eigen::MatrixXd& u, const Eigen::MatrixXd& score_u) const;
  // And back: s_u = (dθ/du) ⊙ s_θ.
  Eigen::MatrixXd score_to_u(const Eigen::MatrixXd& u, const Eigen::MatrixXd& score_theta) const;

 private:
  // A uniform prior whose box is exactly this transform's (every coordinate box, same bounds).
  bool matches_box_prior(const Prior& prior) const;

  std::vector<CoordinateMap> maps_;
  Eigen::VectorXd low_, high_;
};

// u → network features z and their first two derivatives (see the table above).
class FeatureMap {
 public:
  FeatureMap() = default;
  FeatureMap(std::vector<CoordinateMap> maps, Eigen::VectorXd mean, Eigen::VectorXd scale);
  // Mean and sample standard deviation (n − 1) of u over the training set (box coordinates
  // ignore them and store 0 and 1). A coordinate with zero spread (or n = 1) gets scale 1.
  // Throws std::invalid_argument for no samples or a non-finite u in a non-box coordinate.
  static FeatureMap fit(const ParameterTransform& transform, const Eigen::MatrixXd& u);

  // z, dz/du, d²z/du² (each d × n; resized). Box derivatives use 1 − tanh²(u/2) = 4σ(u)σ(−u),
  // accurate in the tails.
  void apply(const Eigen::MatrixXd& u, Eigen::MatrixXd& z, Eigen::MatrixXd& dz,
             Eigen::MatrixXd& d2z) const;

  const std::vector<CoordinateMap>& maps() const { return maps_; }
  const Eigen::VectorXd& mean() const { return mean_; }
  const Eigen::VectorXd& scale() const { return scale_; }

 private:
  std::vector<CoordinateMap> maps_;
  Eigen::VectorXd mean_, scale_;
};

// The objective E[Σ_j ω_j (ŝ_j − s_j)²] with a per-coordinate weight ω_j(u_j) > 0 integrates by
// parts to E[Σ_j ω_j ŝ_j² + 2 ∂_j(ω_j ŝ_j) + 2 ω_j ŝ_j ∂_j log q], which is the unweighted
// per-pair objective evaluated with
//     dz' = √ω·dz,   d2z' = ω'·dz + ω·d2z,   prior score' = √ω·∂ log q
// for the vector model (ŝ = dz ⊙ N) and the energy model (ŝ = −dz ⊙ ∇z E) alike, exact or sliced.
// This rewrites dz, d2z and prior_score (each d × n, at u) in place for ω = κ/dz on every box
// coordinate (κ = √3/2, dz at the box's centre), where d2z' = 0 and dz' = √(κ·dz): the θ-score's
// error is then weighted by the distance to the faces, (θ − a)(b − θ), rather than by its
// square, the weight the unconstrained coordinates give (docs/training.md, "Weighting near the
// faces of a box"). ω·ŝ stays bounded, so the integration by parts keeps no boundary term. ω is
// capped at 1e12 (|u| ≈ 28). Other coordinates are left as they are.
void weigh_box_edges(const FeatureMap& features, const Eigen::MatrixXd& u, Eigen::MatrixXd& dz,
                     Eigen::MatrixXd& d2z, Eigen::MatrixXd& prior_score);

// x → (x − mean)/scale per row (feature); scale = sample standard deviation (1 where it is 0).
class Standardizer {
 public:
  Standardizer() = default;
  Standardizer(Eigen::VectorXd mean, Eigen::VectorXd scale);
  // x: k × n. Throws std::invalid_argument for no samples or a non-finite entry.
  static Standardizer fit(const Eigen::MatrixXd& x);
  Eigen::MatrixXd apply(const Eigen::MatrixXd& x) const;
  const Eigen::VectorXd& mean() const { return mean_; }
  const Eigen::VectorXd& scale() const { return scale_; }

 private:
  Eigen::VectorXd mean_, scale_;
};

}  // namespace fsbi
