// The /model group (docs/file-format.md): everything needed to evaluate a trained score model
// and to say how it was made.
#pragma once

#include "fsbi/score_model.hpp"
#include "fsbi/transform.hpp"
#include "h5/h5.hpp"
#include "nn/score_network.hpp"

#include <string>

namespace fsbi {

inline constexpr int model_format_version = 1;

struct StoredModel {
  ModelInfo info;
  nn::Architecture architecture;
  int members = 1;               // ensemble size: `parameters` holds members × P, member-major
  Eigen::VectorXf parameters;
  ParameterTransform transform;
  FeatureMap features;
  Standardizer x_standardizer;
};

// Writes /model into an open file (the caller owns the file and its atomic finish).
void write_model(h5::File& file, const StoredModel& model);
// The same layout as a subgroup `name` of any group (a sequential run's /rounds/round_<r>/model).
void write_model_group(h5::Group& parent, const StoredModel& model, std::string_view name);
// Reads /model; throws ModelError naming `path`.
StoredModel read_model(const std::string& path);
StoredModel read_model(h5::File& file);

}  // namespace fsbi
