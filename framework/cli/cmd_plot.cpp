// `fsbi plot FILE`: PNG figures of an fsbi file (docs/plots.md): the corner plot of its posterior
// samples and the training-loss curve of its model.
#include "cli_common.hpp"
#include "plot/plot_file.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace fsbi::cli {

int cmd_plot(const Args& args) {
  po::options_description desc("fsbi plot options");
  std::string path;
  plot::PlotFileOptions o;
  desc.add_options()
      ("file", po::value(&path)->required(), "fsbi file: a run (fsbi run), posterior (fsbi sample) or model (fsbi train) file")
      ("output-prefix,o", po::value(&o.output_prefix),
       "write PREFIX_corner.png and PREFIX_loss.png (default: FILE without its extension)")
      ("truth", po::value(&o.truth), "CSV with one row of the true parameters, marked in the corner plot")
      ("bins", po::value(&o.bins)->default_value(o.bins), "histogram bins per axis (1 … 1000)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_args(args, "usage: fsbi plot FILE [--output-prefix PREFIX] [--truth CSV] [--bins N]", desc, vm, &pos))
    return exit_ok;
  if (o.bins < 1 || o.bins > 1000) throw UsageError(fmt::format("--bins must be 1 … 1000, not {}", o.bins));
  for (const auto& w : plot::plot_file(path, o)) std::printf("wrote %s: %s\n", w.path.c_str(), w.description.c_str());
  return exit_ok;
}

}  // namespace fsbi::cli
