#include "cli_common.hpp"
#include "fsbi/plugin.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace fsbi::cli {

int cmd_plugins(const Args& args) {
  po::options_description desc("fsbi plugins options");
  std::vector<std::string> plugin_path;
  desc.add_options()
      ("verbose,v", "also list files that failed to load, and why, and each simulator's options")
      ("plugin-path", po::value(&plugin_path)->composing(), "extra folder to search (repeatable)");
  po::variables_map vm;
  if (!parse_args(args, "usage: fsbi plugins [--verbose] [--plugin-path DIR ...]", desc, vm)) return exit_ok;
  const bool verbose = vm.count("verbose") > 0;

  PluginRegistry registry(PluginRegistry::default_search_path(plugin_path));
  const auto scan = registry.scan();
  if (verbose) {
    std::printf("search path:\n");
    for (const auto& d : registry.search_path()) std::printf("  %s\n", d.c_str());
    std::printf("\n");
  }
  std::printf("%-24s %-10s %6s %6s  %s\n", "NAME", "VERSION", "THETA", "X", "PATH");
  for (const auto& p : scan.plugins) {
    // Dimensions with default options; a simulator that needs options shows "?".
    std::string d = "?", k = "?", prior;
    try {
      auto sim = Simulator::create(p);
      d = std::to_string(sim->parameter_dim());
      k = std::to_string(sim->data_dim());
      if (sim->default_prior()) prior = *sim->default_prior();
    } catch (const PluginError& e) {
      if (verbose) prior = std::string("needs options: ") + e.what();
    }
    std::printf("%-24s %-10s %6s %6s  %s\n", p->name().c_str(), p->version().c_str(), d.c_str(),
                k.c_str(), p->path().c_str());
    if (verbose) {
      if (!p->description().empty()) std::printf("    %s\n", p->description().c_str());
      if (!prior.empty()) std::printf("    default prior: %s\n", prior.c_str());
      if (!p->options_help().empty()) {
        std::string help = p->options_help();
        for (std::size_t pos = 0; (pos = help.find('\n', pos)) != std::string::npos; pos += 14)
          help.replace(pos, 1, "\n             ");
        std::printf("    options: %s\n", help.c_str());
      }
    }
  }
  if (scan.plugins.empty()) std::printf("(no simulator plugins found)\n");
  if (verbose && !scan.failures.empty()) {
    std::printf("\nfailed to load:\n");
    for (const auto& f : scan.failures) std::printf("  %s\n    %s\n", f.path.c_str(), f.reason.c_str());
  } else if (!scan.failures.empty()) {
    std::printf("(%zu file(s) failed to load; see --verbose)\n", scan.failures.size());
  }
  return exit_ok;
}

}  // namespace fsbi::cli
