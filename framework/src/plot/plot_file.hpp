// `fsbi plot`: the figures of an fsbi file (docs/plots.md). A corner plot of the posterior
// samples (/posterior, from `fsbi sample` or `fsbi run`) and the training-loss curve (/model).
#pragma once

#include <string>
#include <vector>

namespace fsbi::plot {

struct PlotFileOptions {
  std::string output_prefix;  // images go to PREFIX_corner.png, PREFIX_loss.png; "" = FILE without extension
  std::string truth;          // CSV (or FILE.h5:/dataset) with one row of the true parameters, or ""
  int bins = 40;              // histogram bins per axis
};

struct WrittenPlot {
  std::string path;
  std::string description;  // "corner plot of 4000 posterior samples of 2 parameters"
};

// Writes the figures `path` holds data for. Throws std::runtime_error naming the file when it is
// missing or not HDF5, holds neither posterior samples nor a model ("x.h5: nothing to plot: no
// posterior samples and no /model"), when --truth is given without posterior samples or does not
// fit them, or when an image cannot be written.
std::vector<WrittenPlot> plot_file(const std::string& path, const PlotFileOptions& options);

}  // namespace fsbi::plot
