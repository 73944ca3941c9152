// The score recentring of a run file (docs/file-format.md, "/recentring"): the pairs simulated at
// posterior draws and the offset estimated from them, so that every simulation a run spent stays
// in its file beside the offset its posterior was sampled with.
#pragma once

#include "fsbi/score_recentring.hpp"
#include "h5/h5.hpp"

#include <cstdint>

namespace fsbi {

// Writes /recentring: theta (K′ × d), x (K′ × k), offset_u and standard_error (d), and the
// attributes num_requested (K = K′ + num_failed), num_failed, seed and first_index (draw j of the K
// simulated with the stream (seed, simulator, first_index + j); the failed ones are not stored) and
// preliminary_chains (the chains of the posterior the draws were taken from).
// Throws h5::Error if it exists.
void write_recentring(h5::File& file, const ScoreRecentring& recentring, std::uint64_t seed, std::uint64_t first_index,
                      int preliminary_chains);

}  // namespace fsbi
