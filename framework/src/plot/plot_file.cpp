#include "plot/plot_file.hpp"

#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"
#include "h5/h5.hpp"
#include "plot/corner_plot.hpp"
#include "plot/loss_plot.hpp"
#include "posterior_file.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <stdexcept>

namespace fsbi::plot {

std::vector<WrittenPlot> plot_file(const std::string& path, const PlotFileOptions& options) {
  std::optional<PosteriorSamples> posterior;
  bool has_model = false;
  {
    h5::File file = h5::File::open(path);
    has_model = file.is_group("model");
    if (file.is_group("posterior")) posterior = read_posterior(file);
  }
  if (!posterior && !has_model)
    throw std::runtime_error(fmt::format("{}: nothing to plot: no posterior samples and no /model", path));
  if (!options.truth.empty() && !posterior)
    throw std::runtime_error(
        fmt::format("--truth {}: {} holds no posterior samples to mark the true parameters in", options.truth, path));

  const std::string prefix =
      options.output_prefix.empty() ? std::filesystem::path(path).replace_extension("").string() : options.output_prefix;
  std::vector<WrittenPlot> written;

  if (posterior) {
    const PosteriorSamples& ps = *posterior;
    const auto d = static_cast<Eigen::Index>(ps.parameter_names.size());
    const Eigen::Index n = static_cast<Eigen::Index>(ps.chains) * ps.draws;
    Eigen::MatrixXd samples(n, d);
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = 0; j < d; ++j) samples(i, j) = ps.theta[static_cast<std::size_t>(i * d + j)];
    CornerOptions co;
    co.bins = options.bins;
    if (!options.truth.empty()) {
      const Table t = read_table(options.truth, d, "true parameters",
                                 fmt::format("the posterior has {} parameters ({})", d,
                                             fmt::join(ps.parameter_names, ", ")));
      if (t.rows() != 1)
        throw std::runtime_error(fmt::format("{}: holds {} rows; --truth takes one row of the {} true parameters",
                                             options.truth, t.rows(), d));
      co.truth.assign(t.data(), t.data() + d);
    }
    co.notes.push_back(fmt::format("{} samples ({} chain{} × {} draws)", n, ps.chains, ps.chains == 1 ? "" : "s",
                                   ps.draws));
    for (const auto& [key, value] : ps.attributes)
      if (key == "sampler") co.notes.push_back("sampler: " + value);
    if (ps.observations.rows() > 0)
      co.notes.push_back(fmt::format("{} observation{}", ps.observations.rows(), ps.observations.rows() == 1 ? "" : "s"));
    const std::string out = prefix + "_corner.png";
    write_corner_plot(out, samples, ps.parameter_names, co);
    written.push_back({out, fmt::format("corner plot of {} posterior samples of {} parameter{}", n, d,
                                        d == 1 ? "" : "s")});
  }

  if (has_model) {
    const ScoreModel model = ScoreModel::load(path);
    const ModelInfo& i = model.info();
    const std::string out = prefix + "_loss.png";
    const int epochs = static_cast<int>(std::max(i.train_loss.size(), i.validation_loss.size()));
    if (epochs == 0) throw std::runtime_error(fmt::format("{}: /model holds no loss history to plot", path));
    const int best = i.best_epoch >= 1 && i.best_epoch <= epochs ? i.best_epoch : 0;
    std::string title = fmt::format("Training loss: {} score network, {} objective", i.kind, i.objective);
    write_loss_plot(out, i.train_loss, i.validation_loss, best, title);
    written.push_back({out, best > 0 ? fmt::format("training loss over {} epochs (best epoch {})", epochs, best)
                                     : fmt::format("training loss over {} epochs", epochs)});
  }
  return written;
}

}  // namespace fsbi::plot
