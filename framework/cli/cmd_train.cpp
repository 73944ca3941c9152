#include "cli_common.hpp"
#include "training_options.hpp"
#include "fsbi/progress.hpp"
#include "fsbi/trainer.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <sstream>

namespace fsbi::cli {


int cmd_train(const Args& args) {
  po::options_description desc("fsbi train options");
  TrainingCliOptions topts;
  TrainingSettings& st = topts.settings;
  std::string data, output;
  desc.add_options()
      ("data,d", po::value(&data)->required(), "simulation file written by `fsbi simulate`")
      ("output,o", po::value(&output)->required(), "model file to write (HDF5, /model)");
  topts.add_to(desc);
  desc.add_options()
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
                  "[--model-kind energy|vector] [--epochs E] [--batch-size B] [--hidden 256,256] [--ensemble K] "
                  "[--seed S] [--threads T] [--resume]",
                  desc, vm))
    return exit_ok;
  topts.finish(vm);
  st.resume = vm.count("resume") > 0;
  st.overwrite = vm.count("overwrite") > 0;
  st.progress = vm.count("quiet") ? ProgressMode::quiet : ProgressMode::automatic;
  const auto r = train_score_model(data, st, output);
  if (!vm.count("quiet"))
    std::printf("wrote %s: %s model, objective %s, %d epochs (best %d, validation loss %.6g), %llu training + "
                "%llu validation pairs in batches of %d at peak learning rate %g, %s\n",
                output.c_str(), st.model_kind.c_str(), r.objective.c_str(), r.epochs, r.best_epoch,
                r.best_validation_loss, static_cast<unsigned long long>(r.num_train),
                static_cast<unsigned long long>(r.num_validation), r.batch_size, r.learning_rate,
                format_duration(r.seconds).c_str());
  return exit_ok;
}

}  // namespace fsbi::cli
