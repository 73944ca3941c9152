// Pieces `fsbi sample` and `fsbi run` share: sampling options, drawing, and writing the
// posterior file (netCDF-4 groups + the model, so the file alone reloads as a Posterior).
#pragma once

#include "cli_common.hpp"
#include "fsbi/posterior.hpp"
#include "h5/h5.hpp"

#include <functional>
#include <string>

namespace fsbi::cli {

struct SamplingCliOptions {
  int num_samples = 10000;
  std::string method = "auto";
  std::string prior;  // --inference-prior
  PosteriorOptions options;
};

void add_sampling_options(po::options_description& desc, SamplingCliOptions& o);
PosteriorDraws draw_posterior(Posterior& post, const Table& obs, SamplingCliOptions& o, std::uint64_t seed,
                              int threads, bool quiet);
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
