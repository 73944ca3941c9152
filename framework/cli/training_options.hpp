// The training options `fsbi train` and `fsbi run` share, with the defaults of TrainingSettings.
#pragma once

#include "cli_common.hpp"
#include "fsbi/trainer.hpp"

#include <string>

namespace fsbi::cli {

struct TrainingCliOptions {
  TrainingSettings settings;
  std::string hidden;  // "256,256": parsed into settings.hidden by finish()

  TrainingCliOptions();
  // Adds --objective, --model-kind, --hidden, --ensemble, --activation, --epochs, --batch-size,
  // --learning-rate, --validation-fraction, --patience, --lr-reductions, --lr-reduction-factor,
  // --clip-norm, --box-weight, --latent-sigma.
  void add_to(po::options_description& desc);
  // Parses --hidden and checks --box-weight; throws UsageError with an example.
  void finish(const po::variables_map& vm);
};

}  // namespace fsbi::cli
