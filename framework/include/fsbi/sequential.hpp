// Sequential Fisher score matching (docs/sequential.md): simulate where the observation says the
// posterior is.
//
// Round 1 simulates from the prior and trains as an amortised run does. Each later round fits a
// Gaussian mixture to posterior samples of the previous round's model (in the prior's
// unconstrained coordinates u), widens it, mixes in a defensive fraction of the prior, simulates
// from that proposal, and retrains on every pair so far with the score of the pooled proposal
// Σ_r w_r q_r(u) in place of the prior's score. Integration by parts needs no other correction:
// its minimiser is the likelihood score whatever density the θ's came from. The posterior always
// uses the original prior.
//
// Every stage writes its own file `<prefix>.round<r>.<stage>.h5` and reuses it on resume, so a
// killed run continues in the round and stage it was in.
#pragma once

#include "fsbi/plugin.hpp"
#include "fsbi/posterior.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/table_io.hpp"
#include "fsbi/trainer.hpp"

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi {

class SequentialError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int max_sequential_rounds = 50;
inline constexpr std::uint64_t min_round_simulations = 50;  // a round with fewer cannot fit a proposal

struct SequentialSettings {
  int rounds = 1;                     // 1: an amortised run
  // Share of the budget simulated from the prior in round 1; the rest is split equally over the
  // later rounds. 0: every round gets an equal share.
  double first_round_fraction = 0;
  int components = 5;                 // Gaussian-mixture components of each proposal
  // Proposal standard deviations × this. 2 measured better than 1.2 on gaussian_linear and
  // two_moons, and than 3 on gaussian_linear (docs/sequential.md#widening).
  double widen = 2.0;
  double defensive_fraction = 0.1;    // share of each proposal drawn from the prior
  int proposal_samples = 4000;        // posterior samples the proposal is fitted to
  // Share of each later round's focused draws taken from the prior truncated to the region where
  // the widened mixture g has mass (PriorTruncation, docs/sequential.md#the-truncated-prior); the
  // rest come from g itself. 0: g alone; 1: the truncated prior alone. 0.5 measured best over
  // gaussian_mixture and two_moons together (docs/sequential.md#when-to-use-rounds-measured-on-sbibm).
  double truncated_share = 0.5;
  // The region's edge τ: this quantile of log g over the posterior samples g was fitted to.
  double truncation_quantile = 1e-3;
};

// The simulations of each round: n_r for r = 1..R, summing to `total`.
std::vector<std::uint64_t> round_budgets(std::uint64_t total, const SequentialSettings& settings);

struct RoundReport {
  int round = 0;
  std::uint64_t simulations = 0;  // requested in this round
  std::uint64_t rows = 0;         // kept
  std::string proposal;           // description of what θ was drawn from
  double simulate_seconds = 0, train_seconds = 0, fit_seconds = 0;
};

struct SequentialReport {
  std::string model;   // the last round's model file
  std::string pooled;  // the simulation file with every round's pairs (what the model trained on)
  std::vector<RoundReport> rounds;
  // The density the pooled pairs came from (every round's proposal, weighted by its pairs): give
  // it to PosteriorOptions::training_proposal when sampling the last model. Null for one round.
  std::shared_ptr<const PooledProposal> proposal;
};

// Inputs of a sequential run. `simulation` gives the total budget (num_simulations), the seed, the
// threads and the failure policy; `training` and `posterior` the settings of every round's
// training and of the sampling that feeds each proposal fit.
struct SequentialInputs {
  const Simulator* simulator = nullptr;
  std::shared_ptr<const Prior> prior;
  std::string prior_source;
  Table observations;  // rows: i.i.d. observations
  SimulationSettings simulation;
  TrainingSettings training;
  PosteriorOptions posterior;
  std::string sampler_method = "auto";  // auto: MALA for energy models, ULA for vector models
  SequentialSettings sequential;
  bool resume = false;
  std::function<void(const std::string&)> log;  // progress lines ("round 2/3 [1/3] ..."); may be empty
};

// Runs the rounds into `<prefix>.round<r>.*.h5` stage files and returns where the final model
// and pooled pairs are. Throws SequentialError on bad settings and whatever the stages throw.
SequentialReport run_sequential(const SequentialInputs& inputs, const std::string& prefix);

// The stage files of a run with `rounds` rounds (for cleanup once the run file is written).
std::vector<std::string> sequential_stage_files(const std::string& prefix, int rounds);

}  // namespace fsbi
