// Training-loss curve (docs/plots.md): train and validation loss per epoch on linear axes, the
// best epoch (lowest validation loss, the one the model keeps) marked.
#pragma once

#include "plot/layout.hpp"

#include <string>
#include <vector>

namespace fsbi::plot {

struct LossLayout {
  int width = 0, height = 0;  // image size in pixels
  Box plot;                   // the data area
  Axis x;                     // epoch (1-based) → pixel x
  Axis y;                     // loss → pixel y
  Box legend;                 // where the legend went (inside `plot`)
};

// Draws the losses of epochs 1 … n (`validation` may be empty or shorter; non-finite values leave
// gaps) with `best_epoch` (1-based; 0 = none) marked, and writes the PNG to `path`. `title` goes
// above the plot. Throws std::invalid_argument when there is no epoch or best_epoch is out of
// range, std::runtime_error if the file cannot be written.
LossLayout write_loss_plot(const std::string& path, const std::vector<double>& train,
                           const std::vector<double>& validation, int best_epoch, const std::string& title = "");

}  // namespace fsbi::plot
