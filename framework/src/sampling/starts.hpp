// Chain starting points from training pairs (docs/sampling.md#starting-points): the weights that
// make a sequential run's pairs stand for prior draws again, and the deterministic resampling
// that applies them. Private to the library.
#pragma once

#include "fsbi/prior.hpp"
#include "fsbi/proposal.hpp"

#include <Eigen/Core>

#include <memory>
#include <optional>
#include <string>

namespace fsbi::sampling {

// The density a sequential run file's pairs came from, q = Σ_r (n_r / n) q_r, from its /rounds
// group (each round's number of rows and proposal; docs/sequential.md#the-run-file), with
// `prior` as round 1's proposal and the mixtures' defensive part. nullopt for any other file
// (amortised pairs come from the prior). A malformed /rounds group throws h5::Error or
// ProposalError naming the file and object.
std::optional<PooledProposal> read_pooled_proposal(const std::string& run_file, std::shared_ptr<const Prior> prior);

// prior / pooled proposal, π_u(u) / q_u(u), at the columns of u (unconstrained coordinates),
// scaled so the largest is 1; π is the prior the rounds' proposals were built on. Bounded by
// n / n_1 before scaling when round 1 drew from the prior. Empty when no weight is finite.
Eigen::VectorXd prior_over_proposal(const PooledProposal& pooled, const Eigen::MatrixXd& u);

// n columns of `cols` by systematic resampling with weights w (≥ 0, not all 0, one per column)
// at the fixed points (j + 1/2)/n of the cumulative weight: deterministic, and column i appears
// ⌊n·w_i/Σw⌋ or ⌈n·w_i/Σw⌉ times, in column order.
Eigen::MatrixXd systematic_resample(const Eigen::MatrixXd& cols, const Eigen::VectorXd& w, int n);

}  // namespace fsbi::sampling
