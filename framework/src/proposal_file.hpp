// A GaussianMixture (fsbi/proposal.hpp) in an HDF5 group (docs/sequential.md#storing-a-mixture):
//
//   attribute  components    int64 K
//   dataset    weights       float64 (K)
//   dataset    means         float64 (K × d)       row k = μ_k
//   dataset    covariances   float64 (K × d × d)   [k] = Σ_k
//
// Private (the HDF5 layer is): the sequential driver stores its rounds' mixtures with these.
#pragma once

#include "fsbi/proposal.hpp"
#include "h5/h5.hpp"

#include <optional>
#include <string>

namespace fsbi {

// Writes the mixture into `group` (which must not already hold these names). The mixture must be
// finalized (ProposalError otherwise).
void write_gaussian_mixture(h5::Group& group, const GaussianMixture& mixture);
// Creates the group `group_path` ("/rounds/2/mixture"; intermediate groups are created, the last
// one must not exist) in the file `path` (opened read-write, or created if it does not exist,
// with fsbi's root attributes) and writes the mixture there.
void write_gaussian_mixture(const std::string& path, const std::string& group_path, const GaussianMixture& mixture);

// Reads and validates (GaussianMixture::finalize) a mixture. Anything missing, of the wrong
// shape, or invalid throws ProposalError naming the file and the object ("run.h5:/rounds/2/
// mixture/covariances has shape 2 × 2 × 3, expected 2 × 3 × 3").
GaussianMixture read_gaussian_mixture(const h5::Group& group);
GaussianMixture read_gaussian_mixture(const std::string& path, const std::string& group_path);

// A PriorTruncation as four attributes of `group`: truncation_threshold (float64),
// truncation_width (float64), truncation_candidates (int64), truncation_mixture_share (float64).
// The reader returns nullopt when none is there, and throws ProposalError naming the group when
// only some are, or a value is invalid (non-finite threshold, width ≤ 0, candidates < 1, share
// outside [0, 1)).
void write_prior_truncation(h5::Group& group, const PriorTruncation& truncation);
std::optional<PriorTruncation> read_prior_truncation(const h5::Group& group);

// A round's proposal as a file of its own (what the sequential driver keeps between rounds): a
// fresh file with fsbi's root attributes and the group /proposal holding the mixture and the
// attribute defensive_fraction. Written to <path>.partial and renamed, so `path` exists only
// complete (a resumed run may trust any file it finds). The reader throws ProposalError naming
// the file for anything missing or invalid, including a defensive fraction outside (0, 1]. A
// truncation (PriorTruncation) is stored with it as attributes of /proposal.
void write_proposal_file(const std::string& path, const GaussianMixture& mixture, double defensive_fraction,
                         const std::optional<PriorTruncation>& truncation = std::nullopt);
GaussianMixture read_proposal_file(const std::string& path, double* defensive_fraction = nullptr,
                                   std::optional<PriorTruncation>* truncation = nullptr);

}  // namespace fsbi
