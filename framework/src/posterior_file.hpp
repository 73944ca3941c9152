// Posterior samples as netCDF-4 / ArviZ InferenceData groups (docs/file-format.md, "Posterior
// samples"): /posterior (theta over chain × draw × parameter), /sample_stats (per-draw sampler
// statistics over chain × draw) and /observed_data (x over trial × data), with HDF5 dimension
// scales so that xarray (engine="h5netcdf"), ArviZ and ncdump see named dimensions and
// coordinates rather than phony_dim_N.
#pragma once

#include "h5/h5.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fsbi {

inline constexpr int posterior_format_version = 1;

struct PosteriorSamples {
  std::vector<std::string> parameter_names;  // d
  int chains = 0, draws = 0;
  // chains × draws × d, C order [chain][draw][param], in θ (user coordinates).
  std::vector<double> theta;
  // Per-draw statistics, each chains × draws in C order: name → values (float64 (chain, draw)
  // variables of /sample_stats, in this order).
  std::vector<std::pair<std::string, std::vector<double>>> stats;
  std::vector<std::int8_t> diverging;  // chains × draws (int8 (chain, draw) variable), or empty
  std::vector<std::string> data_names;  // k
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> observations;  // n_obs × k
  // Provenance, written as string attributes on /posterior and on the root, in this order.
  std::vector<std::pair<std::string, std::string>> attributes;
  // Per parameter (d values each, or empty): float64[d] attributes `rhat` and `ess` of /posterior,
  // in the order of the `parameter` coordinate.
  std::vector<double> rhat, ess;
};

// Writes /posterior, /sample_stats and /observed_data into an open file, plus the root attributes
// netCDF-4 readers expect (`_NCProperties`) and fsbi's (`fsbi_format`, ... if not yet set).
// The root must hold no datasets and none of the three groups; the file may hold other groups
// (e.g. /model, /simulations). Throws std::invalid_argument for inconsistent samples (sizes,
// empty or duplicate names, reserved attribute names), h5::Error for HDF5 failures.
void write_posterior(h5::File& file, const PosteriorSamples& samples);

// Writes /posterior_predictive into a file that already holds the posterior groups: replicate data
// sets (k × m, one per posterior draw) as `x` over (chain, draw, data) with one chain, the
// layout ArviZ's posterior predictive plots read beside /observed_data's `x`. Throws
// std::invalid_argument if the group exists or the names do not match k.
void write_posterior_predictive(h5::File& file, const Eigen::MatrixXd& replicates,
                                const std::vector<std::string>& data_names);

// Reads the three groups back. Throws std::runtime_error naming the file if a group is missing or
// malformed (wrong shapes, missing coordinates, variables not attached to their dimensions).
// `attributes` are the scalar string attributes of /posterior other than fsbi's own.
PosteriorSamples read_posterior(h5::File& file);

}  // namespace fsbi
