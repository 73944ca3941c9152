// A trained Fisher score model, loaded from the /model group of an fsbi file
// (docs/file-format.md): s(θ, x) ≈ ∇θ log p(x|θ) for batches of (θ, x).
//
// Batch layout: one sample per COLUMN (d × n for θ, k × n for x), the same memory as fsbi's
// row-major n × d files.
#pragma once

#include "fsbi/prior.hpp"
#include "fsbi/transform.hpp"

#include <Eigen/Core>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi {

// A file that is not an fsbi model, or a model that does not fit the data given to it. The
// message names the file and what to do.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Provenance and settings stored with a model.
struct ModelInfo {
  std::string kind;        // "vector" or "energy"
  std::string activation;  // "silu", "tanh", "elu", "softplus"
  std::vector<int> hidden;
  int ensemble = 1;        // networks averaged (docs/training.md#ensembles)
  std::string objective;   // "ibp", "sliced", "latent"
  std::vector<std::string> parameter_names, data_names;
  std::string simulator_name, simulator_version, simulator_options;
  std::string prior;       // spec of the prior (of the posterior; the θ's came from it unless...)
  std::string training_data;
  // ...the pairs were drawn from a proposal (sequential rounds): its description; empty otherwise.
  std::string training_proposal;
  std::uint64_t seed = 0, num_train = 0, num_validation = 0;
  int epochs = 0, best_epoch = 0;
  int batch_size = 0;      // mini-batch size trained with; 0 in files written before it was stored
  double best_validation_loss = 0;
  double latent_sigma = 0;
  // How the objective weighed the errors near a box prior's faces: "linear", "square", or "none"
  // (latent objective, or trained in θ); TrainingSettings::box_weight. "square" for files written
  // before the option existed.
  std::string box_weight = "square";
  std::vector<double> train_loss, validation_loss, learning_rate;  // per epoch
  // Range of the training pairs in unconstrained coordinates u: where the model was trained.
  std::vector<double> u_min, u_max;
};

class ScoreModel {
 public:
  // Reads /model from `path`. Throws ModelError ("x.h5: no /model group; train one with
  // `fsbi train`", a malformed or foreign file, an unsupported format version).
  static ScoreModel load(const std::string& path);
  ~ScoreModel();
  ScoreModel(ScoreModel&&) noexcept;
  ScoreModel& operator=(ScoreModel&&) noexcept;

  int theta_dim() const;
  int x_dim() const;
  const ModelInfo& info() const;
  const Prior& prior() const;
  const ParameterTransform& transform() const;
  bool is_energy() const;

  // ∇θ log p(x|θ): theta d × n (inside the prior's support), x k × n → d × n.
  // Throws ModelError for wrong dimensions.
  Eigen::MatrixXd score(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& x) const;
  // The same in unconstrained coordinates u = T⁻¹(θ): ∇u log p(x|T(u)).
  Eigen::MatrixXd score_u(const Eigen::MatrixXd& u, const Eigen::MatrixXd& x) const;
  // Energy models only: E(u, x) with −E ≈ log p(x|T(u)) + c(x) (1 × n).
  Eigen::RowVectorXd energy_u(const Eigen::MatrixXd& u, const Eigen::MatrixXd& x) const;

  struct Impl;

 private:
  explicit ScoreModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fsbi
