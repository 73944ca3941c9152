#include "training_options.hpp"

#include <fmt/format.h>

#include <sstream>

namespace fsbi::cli {

TrainingCliOptions::TrainingCliOptions() : hidden(fmt::format("{}", fmt::join(settings.hidden, ","))) {}

void TrainingCliOptions::add_to(po::options_description& desc) {
  TrainingSettings& st = settings;
  desc.add_options()
      ("objective", po::value(&st.objective)->default_value(st.objective),
       "auto | ibp | sliced | latent (auto: ibp, the exact divergence, up to 16 parameters; sliced above)")
      ("model-kind", po::value(&st.model_kind)->default_value(st.model_kind),
       "energy (s = -grad E: conservative, gives an unnormalised log-likelihood for exact MCMC) | vector "
       "(s = network output)")
      ("hidden", po::value(&hidden)->default_value(hidden), "hidden layer widths")
      ("ensemble", po::value(&st.ensemble)->default_value(st.ensemble),
       "networks trained side by side and averaged (1..16)")
      ("activation", po::value(&st.activation)->default_value(st.activation), "silu | tanh | elu | softplus")
      ("epochs,e", po::value(&st.max_epochs)->default_value(st.max_epochs), "maximum number of epochs")
      ("batch-size,b", po::value(&st.batch_size)->default_value(st.batch_size),
       fmt::format("mini-batch size (0: automatic, {} halved down to {} while an epoch would have fewer than {} steps)",
                   automatic_batch_max, automatic_batch_min, min_steps_per_epoch)
           .c_str())
      ("learning-rate", po::value(&st.learning_rate)->default_value(st.learning_rate, fmt::format("{}", st.learning_rate)),
       fmt::format("peak Adam learning rate, warm-up then cosine decay to 1% of it (0: automatic, {} x {} / batch size)",
                   automatic_rate_at_max_batch, automatic_batch_max)
           .c_str())
      ("validation-fraction",
       po::value(&st.validation_fraction)->default_value(st.validation_fraction, fmt::format("{}", st.validation_fraction)),
       "share of the pairs held out for validation and early stopping")
      ("patience", po::value(&st.patience)->default_value(st.patience),
       "stop after this many epochs without a better validation loss")
      ("lr-reductions", po::value(&st.lr_reductions)->default_value(st.lr_reductions),
       "on a stall, restart from the best parameters at a lower learning rate up to this many times before "
       "stopping")
      ("lr-reduction-factor",
       po::value(&st.lr_reduction_factor)->default_value(st.lr_reduction_factor, fmt::format("{}", st.lr_reduction_factor)),
       "learning-rate factor per reduction")
      ("clip-norm", po::value(&st.clip_norm)->default_value(st.clip_norm, "0"), "clip the gradient's norm to this (0: off)")
      ("box-weight", po::value(&st.box_weight)->default_value(st.box_weight),
       "linear | square: weigh the score's error near a box prior's faces by the distance to them or by its "
       "square (the unconstrained coordinates' own weight; ibp and sliced objectives)")
      ("latent-sigma", po::value(&st.latent_sigma)->default_value(st.latent_sigma, fmt::format("{}", st.latent_sigma)),
       "latent objective: jitter, as a fraction of each parameter's spread in unconstrained coordinates");
}

void TrainingCliOptions::finish(const po::variables_map& vm) {
  std::vector<int> out;
  std::stringstream ss(hidden);
  std::string part;
  while (std::getline(ss, part, ',')) {
    try {
      std::size_t used = 0;
      const int w = std::stoi(part, &used);
      if (used != part.size() || w < 1) throw std::invalid_argument(part);
      out.push_back(w);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--hidden '{}': give positive layer widths separated by commas, e.g. 256,256", hidden));
    }
  }
  if (out.empty()) throw UsageError("--hidden: give at least one layer width, e.g. 256,256");
  settings.hidden = out;
  if (const std::string problem = box_weight_problem(settings.box_weight); !problem.empty()) throw UsageError(problem);
  if (settings.objective == "latent" && vm.count("box-weight") && !vm["box-weight"].defaulted())
    throw UsageError("--box-weight weighs the ibp and sliced objectives; the latent objective has no box weight: "
                     "leave --box-weight out");
}

}  // namespace fsbi::cli
