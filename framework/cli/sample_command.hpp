// Pieces `fsbi sample` and `fsbi run` share: sampling options, drawing, and writing the
// posterior file (netCDF-4 groups + the model, so the file alone reloads as a Posterior).
#pragma once

#include "cli_common.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/posterior.hpp"
#include "fsbi/score_recentring.hpp"
#include "h5/h5.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fsbi::cli {

struct SamplingCliOptions {
  int num_samples = 10000;
  std::string method = "auto";
  std::string prior;  // --inference-prior
  PosteriorOptions options;
};

void add_sampling_options(po::options_description& desc, SamplingCliOptions& o);
// Refuses (UsageError) sampling options out of range, before `fsbi run` spends its budget on
// simulating and training only to fail at sampling.
void check_sampling_options(const SamplingCliOptions& o);
PosteriorDraws draw_posterior(Posterior& post, const Table& obs, SamplingCliOptions& o, std::uint64_t seed,
                              int threads, bool quiet);
// draw_posterior(); with k > 0, first a preliminary posterior — only as many chains as k draws
// need at the same draws per chain (at least 200, or all if fewer) — whose draws (k, evenly
// spaced over its chains) the simulator is run at to estimate the score offset
// (fsbi/score_recentring.hpp, streams from first_index on), then the posterior with all chains
// and the offset (same seed). `recentring` receives the pairs, the offset and the preliminary
// posterior's chain count.
struct RecentringPass {
  ScoreRecentring estimate;
  int preliminary_chains = 0;
};
PosteriorDraws draw_recentred(Posterior& post, const Simulator& sim, const Table& obs, SamplingCliOptions& so,
                              std::uint64_t seed, int threads, bool quiet, std::uint64_t k, std::uint64_t first_index,
                              std::optional<RecentringPass>& recentring);
// At most m of the columns of `samples` (d × total, chain-major posterior samples), evenly spaced
// so that every chain contributes: column j is samples' column ⌊j · total / m⌋.
Eigen::MatrixXd evenly_spaced_draws(const Eigen::Ref<const Eigen::MatrixXd>& samples, std::uint64_t m);
// The model's simulator with the model's options; `simulator` (a name or plugin path; empty: the
// model's name) only says where to find the plugin.
std::shared_ptr<const Simulator> open_model_simulator(const ModelInfo& info, std::string simulator,
                                                     const std::vector<std::string>& plugin_path);
// Writes OUTPUT atomically (OUTPUT.partial, renamed when complete): /model, then the posterior
// groups. With `base` non-empty, OUTPUT starts as a byte copy of that fsbi file (a run file starts
// from its simulation file; HDF5 1.10's H5Ocopy crashes on its variable-length attributes).
// `extra` adds further groups before the file is closed and renamed.
void write_posterior_file(const std::string& output, const std::string& model_path, const PosteriorDraws& draws,
                          const Table& obs, const std::string& observation_source, std::uint64_t seed,
                          const std::string& base = {},
                          const std::function<void(h5::File&)>& extra = {});
void print_summary(const PosteriorDraws& draws, bool quiet);

}  // namespace fsbi::cli
