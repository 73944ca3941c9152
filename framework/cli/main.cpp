// fsbi — simulation-based inference by Fisher score matching. Entry point of the CLI.
#include "commands.hpp"
#include "crash_context.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/version.hpp"

#include <boost/program_options/errors.hpp>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

namespace {

struct Command {
  std::function<int(const fsbi::cli::Args&)> run;
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table{
      {"simulate", {fsbi::cli::cmd_simulate, "run a simulator over prior draws into an HDF5 file"}},
      {"plugins", {fsbi::cli::cmd_plugins, "list the simulator plugins fsbi can find"}},
      {"info", {fsbi::cli::cmd_info, "print a summary of an fsbi file"}},
      {"train", {fsbi::cli::cmd_train, "learn the Fisher score from a simulation file (score matching)"}},
      {"sample", {fsbi::cli::cmd_sample, "draw posterior samples for observations from a trained model"}},
      {"plot", {fsbi::cli::cmd_plot, "write PNG figures of a file: posterior corner plot, training loss"}},
      {"run", {fsbi::cli::cmd_run, "simulate, train and sample in one resumable run"}},
      {"score", {fsbi::cli::cmd_score, "evaluate a trained model's Fisher score at given (theta, x) pairs"}},
      {"mle", {fsbi::cli::cmd_mle, "maximum-likelihood estimate by local Fisher score matching"}},
      {"fisher", {fsbi::cli::cmd_fisher, "Fisher information, Cramer-Rao bounds and Wald intervals at a parameter point"}},
      {"check", {fsbi::cli::cmd_check, "posterior predictive check: does the posterior reproduce the observation?"}},
      {"compress", {fsbi::cli::cmd_compress, "score compression t(x) = s(theta_fid, x) of a data table"}},
  };
  return table;
}

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "fsbi %s — simulation-based inference by Fisher score matching\n\n"
               "usage: fsbi <command> [options]    (fsbi <command> --help for its options)\n\n"
               "commands:\n",
               fsbi::version_string);
  for (const auto& [name, c] : commands()) std::fprintf(out, "  %-10s %s\n", name.c_str(), c.summary);
  std::fprintf(out, "\nSimulators are found on --plugin-path, $FSBI_PLUGIN_PATH and fsbi's own "
                    "simulator folder; see `fsbi plugins`.\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fsbi::cli;
  fsbi::install_crash_handlers();
  if (argc < 2) {
    print_usage(stderr);
    return exit_usage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return exit_ok;
  }
  if (name == "--version") {
    std::printf("fsbi %s (plugin ABI %u; matrix products: %s)\n", fsbi::version_string, FSBI_ABI_VERSION,
                fsbi::matrix_product_backend);
    return exit_ok;
  }
  const auto it = commands().find(name);
  if (it == commands().end()) {
    std::fprintf(stderr, "fsbi: error: unknown command '%s'\n\n", name.c_str());
    print_usage(stderr);
    return exit_usage;
  }
  const Args args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "fsbi %s: error: %s (see fsbi %s --help)\n", name.c_str(), e.what(), name.c_str());
    return exit_usage;
  } catch (const boost::program_options::error& e) {
    std::fprintf(stderr, "fsbi %s: error: %s (see fsbi %s --help)\n", name.c_str(), e.what(), name.c_str());
    return exit_usage;
  } catch (const fsbi::PriorSpecError& e) {
    std::fprintf(stderr, "fsbi %s: error: --prior: %s\n", name.c_str(), e.what());
    return exit_usage;
  } catch (const fsbi::SimulationAborted& e) {
    std::fprintf(stderr, "fsbi %s: error: %s\n", name.c_str(), e.what());
    return exit_sim_aborted;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fsbi %s: error: %s\n", name.c_str(), e.what());
    return exit_error;
  }
}
