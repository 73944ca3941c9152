// Score networks: multilayer perceptrons that model the Fisher score in unconstrained
// coordinates u, and the exact derivatives score matching needs (docs/score-network.md).
//
// Layout: every batch matrix has one sample per COLUMN (features × n, column-major), so each
// layer is one matrix product W·A over the whole batch.
//
// Inputs of the network: the feature vector z (d × n) — a smooth, elementwise map z_j = g_j(u_j)
// of the unconstrained parameters (see fsbi/transform.hpp) — stacked on the standardised data
// x (k × n). Let dz = g'(u) and d2z = g''(u), elementwise (d × n).
//
//  * vector model: N(z, x) ∈ R^d is the MLP output and the score in u is
//        s_u = dz ⊙ N(z, x)
//    (for a box coordinate dz is proportional to dθ/du, so N models the θ-score; in the tails
//    dz → 0 and the prior governs).
//        ∇u·s   = Σ_j [ d2z_j N_j + dz_j² ∂N_j/∂z_j ]
//        vᵀ(∂s/∂u)v = Σ_j v_j² d2z_j N_j + wᵀ (∂N/∂z) w,   w = v ⊙ dz
//  * energy model: E(z, x) ∈ R is the MLP output (a scalar) and
//        s_u = −dz ⊙ ∇z E
//        ∇u·s   = −Σ_j [ d2z_j ∂E/∂z_j + dz_j² ∂²E/∂z_j² ]
//        vᵀ(∂s/∂u)v = −Σ_j v_j² d2z_j ∂E/∂z_j − wᵀ (∇z∇zᵀ E) w,   w = v ⊙ dz
//
// Objectives (per sample; objective_sum returns the SUM over the batch's samples):
//    ibp:    ‖s‖² + 2 ∇u·s + 2 sᵀ prior_score          (exact divergence: d tangents)
//    sliced: ‖s‖² + 2 vᵀ(∂s/∂u)v + 2 sᵀ prior_score    (v = probe, one Rademacher vector/sample)
//    latent: ‖s − target‖²                               (regression, no input derivatives
//                                                         for the vector model)
// where prior_score = ∇u log π_u(u) (d × n).
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fsbi::nn {

enum class Activation { silu, tanh, elu, softplus };
enum class ModelKind { vector, energy };
enum class Objective { ibp, sliced, latent };

std::string_view to_string(Activation a);
std::string_view to_string(ModelKind k);
std::string_view to_string(Objective o);
Activation parse_activation(std::string_view s);  // throws std::invalid_argument naming the choices
ModelKind parse_model_kind(std::string_view s);
Objective parse_objective(std::string_view s);

struct Architecture {
  ModelKind kind = ModelKind::vector;
  int theta_dim = 0;                  // d
  int x_dim = 0;                      // k
  std::vector<int> hidden{128, 128, 128};
  Activation activation = Activation::silu;
  int output_dim() const { return kind == ModelKind::vector ? theta_dim : 1; }
};

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;  // column-major, sample per column
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// One batch (n samples). Only the members an objective needs must be set:
// ibp: z, dz, d2z, x, prior_score; sliced: + probe; latent: z, dz, x, target
// (+ d2z unused).
template <class T>
struct BatchInputs {
  Mat<T> z, dz, d2z;   // d × n
  Mat<T> x;            // k × n
  Mat<T> prior_score;  // d × n
  Mat<T> probe;        // d × n, entries ±1
  Mat<T> target;       // d × n
  Eigen::Index size() const { return z.cols(); }
};

template <class T>
class ScoreNetwork {
 public:
  explicit ScoreNetwork(Architecture arch);

  const Architecture& architecture() const { return arch_; }
  Eigen::Index num_parameters() const { return params_.size(); }
  // Flat parameter vector: layer by layer (input → output), each layer's weight matrix W
  // (out × in, column-major) followed by its bias b (out).
  Vec<T>& parameters() { return params_; }
  const Vec<T>& parameters() const { return params_; }

  // Deterministic initialisation from a seed (fsbi::CounterRng, Stream::training): weights
  // ~ U(−a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot), biases 0; the output layer is
  // scaled down by 0.1 so the initial score is small.
  void initialize(std::uint64_t seed);

  // s_u (d × n). Thread-safe (const, no shared scratch).
  void score(const Mat<T>& z, const Mat<T>& dz, const Mat<T>& x, Mat<T>& s_u) const;
  // Energy models only: E (1 × n).
  void energy(const Mat<T>& z, const Mat<T>& x, Mat<T>& e) const;
  // ∇u·s (1 × n), exact. For tests and diagnostics.
  void divergence(const Mat<T>& z, const Mat<T>& dz, const Mat<T>& d2z, const Mat<T>& x,
                  Mat<T>& div) const;

  // Sum over the batch of the per-sample objective; if grad_sum is not null it is SET to the
  // gradient of that sum with respect to parameters(). Thread-safe: several threads may call it
  // on different batches at once.
  T objective_sum(const BatchInputs<T>& batch, Objective objective, Vec<T>* grad_sum) const;

  // The same sum, computed data-parallel: the batch's columns are cut into consecutive blocks of
  // block_size samples (the last may be shorter), each block's value and gradient are computed
  // by one task, and the blocks are summed in a fixed binary tree (values in double). The tree
  // depends only on the number of blocks, so the result is bit-identical for any thread count
  // (but differs in rounding from objective_sum over the whole batch, and between block sizes).
  // The trainer's step. Runs in the caller's task arena; limit threads with
  // tbb::global_control or an arena. After the first call on a thread it allocates nothing
  // (given a grad_sum of the right size).
  double objective_sum_parallel(const BatchInputs<T>& batch, Objective objective, Vec<T>* grad_sum,
                                Eigen::Index block_size = 64) const;

 private:
  Architecture arch_;
  Vec<T> params_;
  std::vector<Eigen::Index> offsets_;  // offsets_[i]: start of layer i's W in params_
};

// Index (within Stream::training) of the counter-based generator that initialize() uses for
// layer i: kInitializationIndex + i. Far above any sample or epoch index, so the trainer's own
// uses of Stream::training never draw the same numbers.
inline constexpr std::uint64_t kInitializationIndex = 0xF5B1'0000'0000'0000ULL;

// Floating-point operations of the matrix products (2·rows·inner·cols each; GEMM and GEMV) in
// one objective_sum over n samples, forward only or forward + gradient. Elementwise work
// (activations, Hadamard products, reductions: O(width·n·tangents), a factor ~width fewer) is
// not counted. Used for the GFLOP/s of bench/training_step and stated in docs/score-network.md.
double objective_flops(const Architecture& arch, Objective objective, Eigen::Index n,
                       bool with_gradient);

extern template class ScoreNetwork<float>;
extern template class ScoreNetwork<double>;

}  // namespace fsbi::nn
