// Posteriors from a trained Fisher score model (docs/sampling.md).
//
// For observations x_1..x_n assumed i.i.d. given θ,
//     ∇θ log p(θ | x_1..x_n) = ∇θ log π(θ) + Σ_i s(θ, x_i)
// exactly: learning the likelihood score makes composing observations free. Sampling runs in the
// unconstrained coordinates u of the training prior; results are reported in θ.
//
//   auto post = fsbi::Posterior::load("run.h5");
//   auto obs = fsbi::read_table("obs.csv", post.model().x_dim(), "observation", "...");
//   auto draws = post.sample(obs, 10000, {});
#pragma once

#include "fsbi/proposal.hpp"
#include "fsbi/sampler.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"

#include <memory>
#include <optional>
#include <string>

namespace fsbi {

struct PosteriorOptions {
  SamplerSettings sampler;        // method, chains, warm-up, seed, threads, ...
  // Chain starting points: "nearest" — the θ of the training pairs whose x is nearest the
  // observations (no extra simulations; needs the training data), "prior" — prior draws.
  std::string init = "nearest";
  // Where the training pairs' θ came from when not from the prior: a sequential run's pooled
  // proposal. Nearest starts are then resampled from the nearest pairs with weights prior /
  // proposal, so they stand for prior draws again and the chains inherit the simulator's mode
  // weights, not an earlier round's model's. Unset: a run file's /rounds gives it; otherwise the
  // pairs are taken to be prior draws.
  std::shared_ptr<const PooledProposal> training_proposal;
  // Chains per parameter set: with n requested samples, draws per chain = ceil(n / chains).
};

struct PosteriorDraws {
  int chains = 0, draws = 0;
  std::vector<std::string> parameter_names;
  Table theta;                      // (chains·draws) × d, chain-major, in θ
  SampleResult result;              // per-chain statistics and diagnostics (draws in u)
  std::string method, init;
};

class Posterior {
 public:
  // Loads the model from a model file or from a run file that holds /model (and then also its
  // /simulations for nearest-neighbour starts). Throws ModelError.
  static Posterior load(const std::string& path);

  const ScoreModel& model() const { return model_; }
  const Prior& prior() const { return prior_ ? *prior_ : model_.prior(); }

  // Replaces the prior used at inference time. Only meaningful within the support of the
  // training prior (the model knows nothing outside it): throws std::invalid_argument if the
  // new prior's support is not inside the training prior's.
  void set_prior(std::unique_ptr<Prior> prior);

  // Subtracts n·offset_u from the composed score in u (n = the number of observations), and
  // n·offset_uᵀu from the log-likelihood: the learned score's mean over the simulator's data near
  // the posterior, estimated by estimate_score_offset() (fsbi/score_recentring.hpp). Empty: none.
  // Throws std::invalid_argument for a wrong length or non-finite values.
  void set_score_offset(Eigen::VectorXd offset_u);
  const Eigen::VectorXd& score_offset() const { return offset_u_; }

  // ∇θ log π(θ) + Σ_i s(θ, x_i) for theta d × n and observations (rows = i.i.d. observations),
  // less the score offset (if set) mapped to θ.
  Eigen::MatrixXd score(const Eigen::MatrixXd& theta, const Table& observations) const;

  // Draws about n samples (chains × ceil(n / chains)).
  PosteriorDraws sample(const Table& observations, int n, const PosteriorOptions& options) const;

  // The sampling target in u for these observations (used by sample()).
  SamplingTarget target(const Table& observations) const;

 private:
  Posterior(ScoreModel model, std::string path) : model_(std::move(model)), path_(std::move(path)) {}
  Eigen::MatrixXd nearest_starts(const Table& observations, int chains, const PooledProposal* proposal,
                                 std::string& used) const;

  ScoreModel model_;
  std::string path_;
  std::unique_ptr<Prior> prior_;
  Eigen::VectorXd offset_u_;
};

}  // namespace fsbi
