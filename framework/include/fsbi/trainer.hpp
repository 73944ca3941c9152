// Fisher score matching: trains a score model s(θ, x) ≈ ∇θ log p(x|θ) from simulated pairs
// (docs/training.md).
#pragma once

#include "fsbi/progress.hpp"
#include "fsbi/simulation.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fsbi {

class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrainingSettings {
  // energy | vector. Energy is the default: its −E gives MALA its exact accept/reject step.
  std::string model_kind = "energy";
  std::string objective = "auto";      // auto | ibp | sliced | latent
  // Two wide layers fitted the bundled tasks better than three of 128 (docs/training.md#defaults).
  std::vector<int> hidden{256, 256};
  std::string activation = "silu";     // silu | tanh | elu | softplus
  // Independent networks trained side by side (own initialisation and batch order); the model's
  // score is their mean, which averages away most of the fit-to-fit noise (docs/training.md).
  int ensemble = 1;
  int max_epochs = 300;
  // 0: automatic_batch_size(), from the number of training pairs (docs/training.md#the-batch-and-the-rate).
  int batch_size = 0;
  // Peak rate; cosine decay to learning_rate·final_lr_fraction. 0: automatic_learning_rate() of
  // the batch size used.
  double learning_rate = 0;
  double final_lr_fraction = 0.01;
  int warmup_epochs = 2;               // linear warm-up
  double validation_fraction = 0.1;
  int patience = 30;                   // epochs without validation improvement before stopping
  // When validation stalls for `patience` epochs: restart from the best parameters at
  // lr_reduction_factor × the learning rate, up to this many times, then stop
  // (docs/training.md#the-loop).
  int lr_reductions = 2;
  double lr_reduction_factor = 0.3;
  double clip_norm = 0;                // global gradient-norm clipping; 0: off
  double latent_sigma = 0.05;          // latent objective: jitter sd, in units of u's spread
  // How the objective weighs the score's error near the faces of a box prior
  // (docs/training.md#weighting-near-the-faces-of-a-box): "linear" — by the distance
  // to the faces in θ — or "square", the unconstrained coordinates' own weight, the squared
  // distance. The ibp and sliced objectives only; the latent objective has no such weight.
  std::string box_weight = "linear";  // checked with box_weight_problem()
  std::uint64_t seed = 0;
  int threads = 0;                     // 0: all cores; results do not depend on it
  ProgressMode progress = ProgressMode::automatic;
  double checkpoint_seconds = 5.0;     // write <output>.checkpoint at most this often
  // Train in unconstrained coordinates (docs/training-coordinates.md). Turning it off trains
  // directly in θ, which biases integration by parts on bounded priors; kept for diagnostics
  // and for the test that shows the bias.
  bool unconstrained = true;
  bool resume = false;                 // continue from <output>.checkpoint
  bool overwrite = false;
};

// Fewer simulations than this are refused: nothing can be learned from them, and the split into
// training and validation pairs needs a few of each.
inline constexpr int min_training_simulations = 20;

// The batch size 0 stands for: 256, halved (down to 64) while an epoch would have fewer than
// min_steps_per_epoch optimizer steps. Large data sets train as they always did; on a few thousand
// pairs or less, batches of 256 give so few steps that the validation loss stalls before the
// network has learned the score (docs/training.md#the-batch-and-the-rate).
inline constexpr int min_steps_per_epoch = 16;
inline constexpr int automatic_batch_max = 256, automatic_batch_min = 64;
int automatic_batch_size(std::int64_t num_train);
// The learning rate 0 stands for automatic_rate_at_max_batch × automatic_batch_max / batch size:
// 1e-3 at 256, 2e-3 at 128, 4e-3 at 64.
inline constexpr double automatic_rate_at_max_batch = 1e-3;
double automatic_learning_rate(int batch_size);

// The objective "auto" picks: ibp (exact divergence) up to this many parameters, sliced above.
inline constexpr int auto_objective_max_exact_dim = 16;

struct TrainingReport {
  std::string output;
  std::string objective;
  int epochs = 0, best_epoch = 0;
  int batch_size = 0;             // as used (automatic_batch_size() when 0 was asked for)
  double learning_rate = 0;       // peak, as used
  double best_validation_loss = 0;
  std::uint64_t num_train = 0, num_validation = 0;
  double seconds = 0;
  bool stopped_early = false;
};

// The prior_source of a simulation file that pools sequential rounds (docs/sequential.md): the
// file-based train_score_model refuses it, because its θ's were not drawn from the prior.
inline constexpr std::string_view sequential_prior_source = "sequential rounds";

// What is wrong with a TrainingSettings::box_weight, as the message a user sees; empty when it is
// one of the two weights. The CLI (a usage error) and train_score_model share it.
std::string box_weight_problem(std::string_view box_weight);

// Trains on the simulation file `data_path` and writes the model to `output` (atomically; a
// checkpoint <output>.checkpoint is kept while training so `resume` continues a killed run).
TrainingReport train_score_model(const std::string& data_path, const TrainingSettings& settings,
                                 const std::string& output);

// The density the training θ's were drawn from, when it is not the prior (sequential rounds,
// docs/sequential.md). Integration by parts then uses ∇u log q(u) in place of ∇u log π_u(u): the
// objective's minimiser is still the likelihood score, whatever q is, as long as q is positive
// where the pairs are and vanishes at infinity in the unconstrained coordinates u.
struct TrainingProposal {
  std::string description;  // stored with the model (attribute training_proposal)
  // ∇u log q(u) for a d × n batch of unconstrained coordinates (the prior's own transform).
  std::function<Eigen::MatrixXd(const Eigen::MatrixXd& u)> score_u;
  // If positive: fit the input standardisation (u features and x) on the training pairs among the
  // data's first `standardize_rows` rows — round 1's prior draws — instead of on all pairs. The
  // network's inputs then keep the prior's scale, so the whole prior support, where the posterior
  // is still evaluated, stays within a few standard units of the data the network saw.
  Eigen::Index standardize_rows = 0;
};

// In-memory variant used by tests and the C++ API: trains on the given data and writes `output`.
// With `proposal`, the pairs' θ's are taken to come from it instead of from data.prior (which the
// model still stores: the posterior always uses the prior). Needs the unconstrained coordinates
// and an objective other than latent.
TrainingReport train_score_model(const SimulationData& data, const std::string& data_label,
                                 const TrainingSettings& settings, const std::string& output,
                                 const TrainingProposal* proposal = nullptr);

}  // namespace fsbi
