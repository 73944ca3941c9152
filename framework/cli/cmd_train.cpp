#include "cli_common.hpp"
#include "fsbi/progress.hpp"
#include "fsbi/trainer.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <sstream>

namespace fsbi::cli {

namespace {
std::vector<int> parse_widths(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    try {
      std::size_t used = 0;
      const int w = std::stoi(part, &used);
      if (used != part.size() || w < 1) throw std::invalid_argument(part);
      out.push_back(w);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--hidden '{}': give positive layer widths separated by commas, e.g. 128,128,128", s));
    }
  }
  if (out.empty()) throw UsageError("--hidden: give at least one layer width, e.g. 128,128,128");
  return out;
}
}  // namespace

int cmd_train(const Args& args) {
  po::options_description desc("fsbi train options");
  TrainingSettings st;
  std::string data, output, hidden = "128,128,128";
  desc.add_options()
      ("data,d", po::value(&data)->required(), "simulation file written by `fsbi simulate`")
      ("output,o", po::value(&output)->required(), "model file to write (HDF5, /model)")
      ("objective", po::value(&st.objective)->default_value(st.objective),
       "auto | ibp | sliced | latent (auto: ibp, the exact divergence, up to 16 parameters; sliced above)")
      ("model-kind", po::value(&st.model_kind)->default_value(st.model_kind),
       "vector (s = network output) | energy (s = -grad E: conservative, gives an unnormalised log-likelihood)")
      ("hidden", po::value(&hidden)->default_value(hidden), "hidden layer widths")
      ("activation", po::value(&st.activation)->default_value(st.activation), "silu | tanh | elu | softplus")
      ("epochs,e", po::value(&st.max_epochs)->default_value(st.max_epochs), "maximum number of epochs")
      ("batch-size,b", po::value(&st.batch_size)->default_value(st.batch_size), "mini-batch size")
      ("learning-rate", po::value(&st.learning_rate)->default_value(st.learning_rate, "0.001"),
       "peak Adam learning rate (warm-up, then cosine decay to 1% of it)")
      ("validation-fraction", po::value(&st.validation_fraction)->default_value(st.validation_fraction, "0.1"),
       "share of the pairs held out for validation and early stopping")
      ("patience", po::value(&st.patience)->default_value(st.patience),
       "stop after this many epochs without a better validation loss")
      ("clip-norm", po::value(&st.clip_norm)->default_value(0, "0"), "clip the gradient's norm to this (0: off)")
      ("latent-sigma", po::value(&st.latent_sigma)->default_value(st.latent_sigma, "0.05"),
       "latent objective: jitter, as a fraction of each parameter's spread in unconstrained coordinates")
      ("seed", po::value(&st.seed)->default_value(0), "seed: split, shuffling, initialisation")
      ("threads,t", po::value(&st.threads)->default_value(0), "threads (0: all cores); results do not depend on it")
      ("checkpoint-seconds", po::value(&st.checkpoint_seconds)->default_value(st.checkpoint_seconds, "5"),
       "write OUTPUT.checkpoint (for --resume) at most this often")
      ("resume", "continue an interrupted run from OUTPUT.checkpoint (same settings)")
      ("overwrite", "replace OUTPUT if it exists")
      ("quiet,q", "no progress output");
  po::variables_map vm;
  if (!parse_args(args,
                  "usage: fsbi train --data FILE --output FILE [--objective auto|ibp|sliced|latent] "
                  "[--model-kind vector|energy] [--epochs E] [--batch-size B] [--hidden 128,128,128] "
                  "[--seed S] [--threads T] [--resume]",
                  desc, vm))
    return exit_ok;
  st.hidden = parse_widths(hidden);
  st.resume = vm.count("resume") > 0;
  st.overwrite = vm.count("overwrite") > 0;
  st.progress = vm.count("quiet") ? ProgressMode::quiet : ProgressMode::automatic;
  const auto r = train_score_model(data, st, output);
  if (!vm.count("quiet"))
    std::printf("wrote %s: %s model, objective %s, %d epochs (best %d, validation loss %.6g), %llu training + "
                "%llu validation pairs, %s\n",
                output.c_str(), st.model_kind.c_str(), r.objective.c_str(), r.epochs, r.best_epoch,
                r.best_validation_loss, static_cast<unsigned long long>(r.num_train),
                static_cast<unsigned long long>(r.num_validation), format_duration(r.seconds).c_str());
  return exit_ok;
}

}  // namespace fsbi::cli
