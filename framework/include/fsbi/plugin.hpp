// Host side of the simulator plugin ABI: loading plugins, finding them by name, configuring a
// simulator with the user's options, and calling it from worker threads.
//
// Plugins are opened with RTLD_NOW | RTLD_LOCAL and never unloaded: dlclose during normal
// operation crashes with thread-local storage and oneTBB workers (oneTBB#977).
#pragma once

#include <fsbi/simulator_abi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fsbi {

// A plugin that cannot be loaded or a simulator that cannot be configured. The message is one
// line naming the file or simulator, what is wrong, and what to do.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A loaded plugin library.
class Plugin {
 public:
  // Loads the shared library at `path` and validates its entry (symbol present, ABI version,
  // name and create() set). Throws PluginError.
  static std::shared_ptr<const Plugin> load(const std::string& path);

  const std::string& path() const { return path_; }
  const fsbi_plugin_entry& entry() const { return *entry_; }
  std::string name() const { return entry_->name; }
  std::string version() const { return entry_->version ? entry_->version : ""; }
  std::string description() const { return entry_->description ? entry_->description : ""; }
  std::string options_help() const { return entry_->options_help ? entry_->options_help : ""; }

 private:
  Plugin(std::string path, const fsbi_plugin_entry* entry) : path_(std::move(path)), entry_(entry) {}
  std::string path_;
  const fsbi_plugin_entry* entry_;
};

// `--sim-opt key=value` options, in the order given (duplicates rejected by parse).
using SimulatorOptions = std::vector<std::pair<std::string, std::string>>;

// Parses "key=value" strings. Throws std::invalid_argument naming the bad entry.
SimulatorOptions parse_simulator_options(const std::vector<std::string>& key_values);
// Canonical text "key=value,key=value" (sorted by key), as stored in files; "" for none.
std::string format_simulator_options(const SimulatorOptions& options);
// The "key=value" entries of such a stored text (its inverse, for parse_simulator_options or
// anything that takes --sim-opt strings); none for "".
std::vector<std::string> split_simulator_options(std::string_view formatted);

class SimulatorInstance;

// A simulator configured with options: metadata plus a factory of per-thread instances.
class Simulator {
 public:
  // Calls the plugin's create() with the options. Throws PluginError with the plugin's message
  // ("simulator 'gaussian_mean': option 'dim': 'x' is not an integer").
  static std::shared_ptr<const Simulator> create(std::shared_ptr<const Plugin> plugin,
                                                 const SimulatorOptions& options = {});
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  const Plugin& plugin() const { return *plugin_; }
  std::string name() const { return plugin_->name(); }
  std::string version() const { return plugin_->version(); }
  const SimulatorOptions& options() const { return options_; }
  int parameter_dim() const { return static_cast<int>(parameter_names_.size()); }
  int data_dim() const { return static_cast<int>(data_names_.size()); }
  const std::vector<std::string>& parameter_names() const { return parameter_names_; }
  const std::vector<std::string>& data_names() const { return data_names_; }
  const std::optional<std::string>& default_prior() const { return default_prior_; }

  // Thread-safe; each worker thread makes its own.
  std::unique_ptr<SimulatorInstance> create_instance() const;

  // Optional capability by id (FSBI_EXT_...), or nullptr.
  const void* extension(const char* id) const;

  // The analytic score ∇θ log p(x|θ) if the plugin provides FSBI_EXT_LIKELIHOOD_SCORE.
  bool has_likelihood_score() const;
  // theta n x d, x n x k, score n x d, row-major. Throws PluginError.
  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const;

  const fsbi_simulator* c_api() const { return sim_; }

 private:
  Simulator() = default;
  std::shared_ptr<const Plugin> plugin_;
  SimulatorOptions options_;
  fsbi_simulator* sim_ = nullptr;
  std::vector<std::string> parameter_names_, data_names_;
  std::optional<std::string> default_prior_;
};

// Outcome of one simulate() call.
struct SimulateResult {
  bool call_failed = false;        // the plugin reported FSBI_ERROR for the whole batch
  std::string first_error;         // message of the whole call or of the first failed row
};

// One thread's instance of a simulator. Not thread-safe: one thread at a time.
class SimulatorInstance {
 public:
  ~SimulatorInstance();
  SimulatorInstance(const SimulatorInstance&) = delete;
  SimulatorInstance& operator=(const SimulatorInstance&) = delete;

  // Simulates n = index.size() rows. Row i's randomness is the stream
  // CounterRng(seed, Stream::simulator, index[i], attempt[i]).
  //   theta n x d (row-major), x n x k (written), row_ok n (written: 1 ok, 0 failed).
  // Rows the plugin reported as failed, and rows with a non-finite value, get row_ok = 0.
  SimulateResult simulate(std::uint64_t seed, std::span<const std::uint64_t> index,
                          std::span<const std::uint32_t> attempt, std::span<const double> theta,
                          std::span<double> x, std::span<std::uint8_t> row_ok);

 private:
  friend class Simulator;
  SimulatorInstance(const Simulator& sim, void* instance) : sim_(sim), instance_(instance) {}
  const Simulator& sim_;
  void* instance_;
  std::vector<fsbi_status> status_;
};

struct PluginLoadFailure {
  std::string path;
  std::string reason;
};

// Finds plugins by name on a search path: the folders are scanned in order for *.so files and
// the first plugin whose entry name matches wins.
class PluginRegistry {
 public:
  explicit PluginRegistry(std::vector<std::string> search_path);

  // The default search path: `extra` (from --plugin-path; each entry may be a ':'-separated
  // list), then $FSBI_PLUGIN_PATH (':'-separated), then fsbi's own simulator folder
  // (<prefix>/lib/fsbi/simulators next to the running executable).
  static std::vector<std::string> default_search_path(const std::vector<std::string>& extra = {});

  const std::vector<std::string>& search_path() const { return search_path_; }

  // A name ("two_moons") is looked up on the search path; anything containing '/' or ending in
  // ".so" is loaded as a path. Throws PluginError listing where it looked.
  std::shared_ptr<const Plugin> find(const std::string& name_or_path) const;

  struct Scan {
    std::vector<std::shared_ptr<const Plugin>> plugins;  // first of each name, in path order
    std::vector<PluginLoadFailure> failures;             // files that did not load, and why
  };
  Scan scan() const;

 private:
  std::vector<std::string> search_path_;
};

// Convenience: find a plugin on the default search path (plus `extra`) and configure it.
std::shared_ptr<const Simulator> open_simulator(const std::string& name_or_path,
                                                const SimulatorOptions& options = {},
                                                const std::vector<std::string>& extra_path = {});

}  // namespace fsbi
