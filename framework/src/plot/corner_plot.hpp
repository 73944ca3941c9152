// Corner plot of posterior samples (docs/plots.md): for d parameters a d × d grid with the 1-D
// marginal histograms on the diagonal and the pairwise 2-D densities (shaded, with 39.3 % and
// 86.5 % highest-density contours, the "1σ" and "2σ" regions of a 2-D Gaussian, and the samples
// outside the outer contour as dots; a scatter plot for few samples) below it, parameter names as
// axis labels, and the true parameters marked when given.
#pragma once

#include "plot/layout.hpp"

#include <Eigen/Core>

#include <string>
#include <vector>

namespace fsbi::plot {

struct CornerOptions {
  // Histogram bins per axis (1 … 1000): the 2-D density grid, and the 1-D histograms up to
  // Rice's rule 2·n^(1/3) (at least 10) for n samples.
  int bins = 40;
  std::vector<double> truth;       // d true parameter values, or empty
  std::vector<std::string> notes;  // short lines written in the empty upper triangle (d ≥ 2)
};

struct CornerLayout {
  int width = 0, height = 0;  // image size in pixels
  int d = 0;
  int panel_size = 0;          // px, the data area of every panel is panel_size × panel_size
  std::vector<Box> panels;     // d × d, row-major; upper triangle (col > row) empty
  // Per parameter p: the value range shown; panels in column p show it on x, panels in row p
  // (left of the diagonal) on y.
  std::vector<double> lo, hi;

  const Box& panel(int row, int col) const { return panels[static_cast<std::size_t>(row * d + col)]; }
  // Pixel x of value v of parameter `col` in column `col`; pixel y of value v of parameter `row` in
  // the 2-D panels of row `row`.
  Axis x_axis(int col) const;
  Axis y_axis(int row) const;
};

// Draws the corner plot of `samples` (n × d, one sample per row; non-finite values are left out)
// and writes it as PNG to `path`. Throws std::invalid_argument for inconsistent sizes or options,
// std::runtime_error if the file cannot be written.
CornerLayout write_corner_plot(const std::string& path, const Eigen::MatrixXd& samples,
                               const std::vector<std::string>& names, const CornerOptions& options = {});

}  // namespace fsbi::plot
