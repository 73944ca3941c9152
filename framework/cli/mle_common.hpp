// Pieces `fsbi mle`, `fsbi fisher` and `fsbi compress` share: parameter vectors on the command
// line, opening a simulator with its prior, and writing result groups.
#pragma once

#include "cli_common.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

namespace fsbi::cli {

// "1, 2.5,-3" → (1, 2.5, −3). Throws UsageError naming the option.
inline Eigen::VectorXd parse_vector(const std::string& text, const std::string& option) {
  std::vector<double> v;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto comma = text.find(',', pos);
    std::string field = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const auto b = field.find_first_not_of(" \t"), e = field.find_last_not_of(" \t");
    field = b == std::string::npos ? "" : field.substr(b, e - b + 1);
    double x = 0;
    const char* first = field.data() + (!field.empty() && field[0] == '+' ? 1 : 0);
    const auto [ptr, ec] = std::from_chars(first, field.data() + field.size(), x);
    if (field.empty() || ec != std::errc() || ptr != field.data() + field.size() || !std::isfinite(x))
      throw UsageError(fmt::format("{} '{}': expected comma-separated numbers, e.g. {} 1,0.5", option, text, option));
    v.push_back(x);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size()));
}

// A parameter vector of exactly d values (one value is broadcast when `broadcast`).
inline Eigen::VectorXd parse_parameter_vector(const std::string& text, const std::string& option, int d,
                                              bool broadcast = false) {
  Eigen::VectorXd v = parse_vector(text, option);
  if (broadcast && v.size() == 1) return Eigen::VectorXd::Constant(d, v[0]);
  if (v.size() != d)
    throw UsageError(fmt::format("{} has {} values, the simulator has {} parameters{}", option, v.size(), d,
                                 broadcast ? " (give one value for all, or one per parameter)" : ""));
  return v;
}

struct SimulatorWithPrior {
  std::shared_ptr<const Simulator> simulator;
  std::unique_ptr<Prior> prior;
  std::string prior_source;  // "simulator default" or "--prior"
};

inline SimulatorWithPrior open_simulator_with_prior(const std::string& name, const std::vector<std::string>& sim_opts,
                                                    const std::vector<std::string>& plugin_path,
                                                    std::string prior_spec) {
  SimulatorOptions options;
  try {
    options = parse_simulator_options(sim_opts);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  SimulatorWithPrior out;
  out.simulator = open_simulator(name, options, plugin_path);
  out.prior_source = "--prior";
  if (prior_spec.empty()) {
    if (!out.simulator->default_prior())
      throw UsageError(fmt::format("simulator '{}' declares no default prior; give one with --prior",
                                   out.simulator->name()));
    prior_spec = *out.simulator->default_prior();
    out.prior_source = "simulator default";
  }
  out.prior = parse_prior(prior_spec, out.simulator->parameter_dim());
  return out;
}

inline std::string format_values(const Eigen::VectorXd& v) {
  std::string s;
  for (Eigen::Index i = 0; i < v.size(); ++i) s += fmt::format("{}{:.6g}", i ? ", " : "", v[i]);
  return s;
}

}  // namespace fsbi::cli
