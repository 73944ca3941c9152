#include "fsbi/plugin.hpp"

#include "fsbi/random.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <set>

namespace fsbi {
namespace fs = std::filesystem;

namespace {

// The host's log sink handed to plugins.
void host_log(const fsbi_host*, std::int32_t level, const char* message) {
  static std::mutex mutex;
  static const char* names[] = {"debug", "info", "warning", "error"};
  const char* name = (level >= 0 && level <= 3) ? names[level] : "log";
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "[plugin %s] %s\n", name, message ? message : "");
}

const fsbi_host host_services{FSBI_ABI_VERSION, nullptr, &host_log};

// fsbi_rng implementation over CounterRng: the state pointer is a CounterRng.
CounterRng& rng_of(fsbi_rng* r) { return *static_cast<CounterRng*>(r->state); }
const fsbi_rng_api rng_api{
    [](fsbi_rng* r) -> std::uint64_t { return rng_of(r).next_u64(); },
    [](fsbi_rng* r) -> double { return rng_of(r).uniform(); },
    [](fsbi_rng* r) -> double { return rng_of(r).normal(); },
    [](fsbi_rng* r, double* out, std::uint64_t n) { rng_of(r).fill_uniform({out, n}); },
    [](fsbi_rng* r, double* out, std::uint64_t n) { rng_of(r).fill_normal({out, n}); },
};

std::string message_text(const fsbi_message& m) {
  const std::size_t n = strnlen(m.text, sizeof m.text);
  return n ? std::string(m.text, n) : std::string("(no message)");
}

bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos || (s.size() > 3 && s.ends_with(".so"));
}

std::vector<std::string> split_path_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = s.find(':', start);
    std::string part = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty()) out.push_back(part);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// <prefix>/lib/fsbi/simulators, where <prefix> is the folder above the running executable's.
std::string own_plugin_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return (exe.parent_path().parent_path() / FSBI_PLUGIN_INSTALL_DIR).lexically_normal().string();
}

}  // namespace

// ---- Plugin -----------------------------------------------------------------------------------

std::shared_ptr<const Plugin> Plugin::load(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw PluginError(fmt::format("{}: no such file; give the path of a simulator plugin (.so) "
                                  "or a simulator name (see `fsbi plugins`)",
                                  path));
  if (fs::is_directory(path, ec))
    throw PluginError(fmt::format("{}: is a directory, not a plugin; to search a folder for "
                                  "plugins use --plugin-path {}",
                                  path, path));
  // RTLD_LOCAL: plugins do not see each other's symbols. Never dlclose'd (see plugin.hpp).
  void* handle = dlopen(fs::absolute(path).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = dlerror();
    throw PluginError(fmt::format("{}: cannot be loaded as a plugin: {}", path,
                                  err ? err : "unknown dlopen error"));
  }
  dlerror();
  const auto* entry = static_cast<const fsbi_plugin_entry*>(dlsym(handle, FSBI_ENTRY_SYMBOL));
  if (!entry)
    throw PluginError(fmt::format(
        "{}: not an fsbi simulator plugin (no exported '{}' symbol); build it with "
        "fsbi_add_simulator() and the FSBI_SIMULATOR macro (docs/plugin-guide.md)",
        path, FSBI_ENTRY_SYMBOL));
  if (entry->abi_version != FSBI_ABI_VERSION)
    throw PluginError(fmt::format(
        "{}: built for fsbi plugin ABI version {}, but this fsbi uses ABI version {}; rebuild the "
        "plugin against this fsbi's SDK",
        path, entry->abi_version, FSBI_ABI_VERSION));
  if (!entry->name || !*entry->name || !entry->create)
    throw PluginError(fmt::format("{}: malformed plugin entry (missing name or create function)",
                                  path));
  return std::shared_ptr<const Plugin>(new Plugin(path, entry));
}

// ---- options ----------------------------------------------------------------------------------

SimulatorOptions parse_simulator_options(const std::vector<std::string>& key_values) {
  SimulatorOptions out;
  std::set<std::string> seen;
  for (const auto& kv : key_values) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument(fmt::format(
          "simulator option '{}' is not of the form key=value (e.g. --sim-opt dim=50)", kv));
    std::string key = kv.substr(0, eq);
    if (!seen.insert(key).second)
      throw std::invalid_argument(fmt::format("simulator option '{}' is given twice", key));
    out.emplace_back(std::move(key), kv.substr(eq + 1));
  }
  return out;
}

std::string format_simulator_options(const SimulatorOptions& options) {
  std::map<std::string, std::string> sorted(options.begin(), options.end());
  std::string out;
  for (const auto& [k, v] : sorted) {
    if (!out.empty()) out += ',';
    out += k + '=' + v;
  }
  return out;
}

std::vector<std::string> split_simulator_options(std::string_view formatted) {
  std::vector<std::string> out;
  for (std::size_t p = 0; p < formatted.size();) {
    const std::size_t c = std::min(formatted.find(',', p), formatted.size());
    out.emplace_back(formatted.substr(p, c - p));
    p = c + 1;
  }
  return out;
}

// ---- Simulator --------------------------------------------------------------------------------

std::shared_ptr<const Simulator> Simulator::create(std::shared_ptr<const Plugin> plugin,
                                                   const SimulatorOptions& options) {
  std::vector<fsbi_option> c_options;
  for (const auto& [k, v] : options) c_options.push_back({k.c_str(), v.c_str()});
  fsbi_message msg{};
  fsbi_simulator* sim = nullptr;
  const fsbi_status st = plugin->entry().create(&host_services, c_options.data(),
                                                static_cast<std::uint32_t>(c_options.size()),
                                                &sim, &msg);
  if (st != FSBI_OK || !sim) {
    const std::string what = st == FSBI_INVALID_OPTION ? "rejected its options" : "failed to start";
    throw PluginError(fmt::format("simulator '{}' ({}) {}: {}", plugin->name(), plugin->path(),
                                  what, message_text(msg)));
  }
  std::shared_ptr<Simulator> out(new Simulator());
  out->plugin_ = std::move(plugin);
  out->options_ = options;
  out->sim_ = sim;
  const fsbi_simulator_info* info = sim->info ? sim->info(sim) : nullptr;
  const auto& p = *out->plugin_;
  if (!info || !sim->create_instance || !sim->destroy_instance || !sim->simulate)
    throw PluginError(fmt::format("simulator '{}' ({}): incomplete function table", p.name(),
                                  p.path()));
  if (info->parameter_dim == 0 || info->data_dim == 0)
    throw PluginError(fmt::format("simulator '{}' ({}): declares {} parameters and {} data "
                                  "values; both must be at least 1",
                                  p.name(), p.path(), info->parameter_dim, info->data_dim));
  for (std::uint32_t i = 0; i < info->parameter_dim; ++i)
    out->parameter_names_.push_back(info->parameter_names && info->parameter_names[i]
                                        ? info->parameter_names[i]
                                        : fmt::format("parameter_{}", i + 1));
  for (std::uint32_t i = 0; i < info->data_dim; ++i)
    out->data_names_.push_back(info->data_names && info->data_names[i]
                                   ? info->data_names[i]
                                   : fmt::format("data_{}", i + 1));
  if (info->default_prior && *info->default_prior) out->default_prior_ = info->default_prior;
  return out;
}

Simulator::~Simulator() {
  if (sim_ && sim_->destroy) sim_->destroy(sim_);
}

std::unique_ptr<SimulatorInstance> Simulator::create_instance() const {
  fsbi_message msg{};
  void* instance = nullptr;
  if (sim_->create_instance(sim_, &instance, &msg) != FSBI_OK)
    throw PluginError(fmt::format("simulator '{}': cannot create an instance: {}", name(),
                                  message_text(msg)));
  return std::unique_ptr<SimulatorInstance>(new SimulatorInstance(*this, instance));
}

const void* Simulator::extension(const char* id) const {
  return sim_->get_extension ? sim_->get_extension(sim_, id) : nullptr;
}

bool Simulator::has_likelihood_score() const {
  return extension(FSBI_EXT_LIKELIHOOD_SCORE) != nullptr;
}

void Simulator::likelihood_score(std::span<const double> theta, std::span<const double> x,
                                 std::span<double> score) const {
  const auto* ext = static_cast<const fsbi_ext_likelihood_score*>(extension(FSBI_EXT_LIKELIHOOD_SCORE));
  if (!ext)
    throw PluginError(fmt::format("simulator '{}' does not provide an analytic likelihood score",
                                  name()));
  const std::size_t d = parameter_dim(), k = data_dim();
  const std::size_t n = theta.size() / d;
  if (theta.size() != n * d || x.size() != n * k || score.size() != n * d)
    throw std::invalid_argument("likelihood_score: theta, x and score sizes do not match");
  fsbi_message msg{};
  if (ext->score(sim_, n, theta.data(), x.data(), score.data(), &msg) != FSBI_OK)
    throw PluginError(fmt::format("simulator '{}': likelihood score failed: {}", name(),
                                  message_text(msg)));
}

// ---- SimulatorInstance ------------------------------------------------------------------------

SimulatorInstance::~SimulatorInstance() {
  sim_.c_api()->destroy_instance(sim_.c_api(), instance_);
}

SimulateResult SimulatorInstance::simulate(std::uint64_t seed, std::span<const std::uint64_t> index,
                                           std::span<const std::uint32_t> attempt,
                                           std::span<const double> theta, std::span<double> x,
                                           std::span<std::uint8_t> row_ok) {
  const std::size_t n = index.size();
  const std::size_t d = sim_.parameter_dim(), k = sim_.data_dim();
  if (attempt.size() != n || theta.size() != n * d || x.size() != n * k || row_ok.size() != n)
    throw std::invalid_argument("SimulatorInstance::simulate: buffer sizes do not match");
  // Streams live on this stack frame for the duration of the call.
  std::vector<CounterRng> streams;
  streams.reserve(n);
  std::vector<fsbi_rng> c_streams(n);
  for (std::size_t i = 0; i < n; ++i) {
    streams.emplace_back(seed, Stream::simulator, index[i], attempt[i]);
    c_streams[i] = fsbi_rng{&rng_api, &streams[i]};
  }
  status_.assign(n, FSBI_SIMULATION_FAILED);
  // NaN-fill so a plugin that forgets to write a value is caught as non-finite.
  std::fill(x.begin(), x.end(), std::numeric_limits<double>::quiet_NaN());
  fsbi_message msg{};
  SimulateResult result;
  const fsbi_status st = sim_.c_api()->simulate(sim_.c_api(), instance_, n, theta.data(), x.data(),
                                                c_streams.data(), status_.data(), &msg);
  if (st != FSBI_OK) {
    result.call_failed = true;
    result.first_error = message_text(msg);
    std::fill(row_ok.begin(), row_ok.end(), std::uint8_t{0});
    return result;
  }
  for (std::size_t i = 0; i < n; ++i) {
    bool ok = status_[i] == FSBI_OK;
    if (!ok) {
      if (result.first_error.empty()) result.first_error = message_text(msg);
    } else {
      for (std::size_t j = 0; j < k; ++j)
        if (!std::isfinite(x[i * k + j])) {
          ok = false;
          if (result.first_error.empty())
            result.first_error = fmt::format("non-finite value {} in {}", x[i * k + j],
                                             sim_.data_names()[j]);
          break;
        }
    }
    row_ok[i] = ok ? 1 : 0;
  }
  return result;
}

// ---- PluginRegistry ---------------------------------------------------------------------------

PluginRegistry::PluginRegistry(std::vector<std::string> search_path)
    : search_path_(std::move(search_path)) {}

std::vector<std::string> PluginRegistry::default_search_path(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (const auto& e : extra)
    for (auto& p : split_path_list(e)) out.push_back(std::move(p));
  if (const char* env = std::getenv("FSBI_PLUGIN_PATH"))
    for (auto& p : split_path_list(env)) out.push_back(std::move(p));
  if (auto own = own_plugin_dir(); !own.empty()) out.push_back(own);
  // Drop repeats, keeping the first (highest-priority) occurrence.
  std::vector<std::string> unique;
  for (auto& p : out)
    if (std::find(unique.begin(), unique.end(), p) == unique.end()) unique.push_back(p);
  return unique;
}

namespace {
std::vector<fs::path> plugin_files(const std::string& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".so" && !fs::is_directory(e.path(), ec)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}
}  // namespace

std::shared_ptr<const Plugin> PluginRegistry::find(const std::string& name_or_path) const {
  if (looks_like_path(name_or_path)) return Plugin::load(name_or_path);
  // Fast path: <dir>/<name>.so, the file name fsbi_add_simulator() gives.
  std::vector<PluginLoadFailure> failures;
  for (const auto& dir : search_path_) {
    const fs::path candidate = fs::path(dir) / (name_or_path + ".so");
    std::error_code ec;
    if (!fs::exists(candidate, ec)) continue;
    try {
      auto p = Plugin::load(candidate.string());
      if (p->name() == name_or_path) return p;
    } catch (const PluginError& e) {
      failures.push_back({candidate.string(), e.what()});
    }
  }
  // Slow path: a plugin whose file name differs from its simulator name.
  for (const auto& dir : search_path_)
    for (const auto& file : plugin_files(dir)) {
      try {
        auto p = Plugin::load(file.string());
        if (p->name() == name_or_path) return p;
      } catch (const PluginError&) {
      }
    }
  std::string where;
  for (const auto& dir : search_path_) where += (where.empty() ? "" : ", ") + dir;
  std::string msg = fmt::format("no simulator named '{}' on the plugin path ({})", name_or_path,
                                where.empty() ? "empty" : where);
  if (!failures.empty()) msg += fmt::format("; {} failed to load: {}", failures[0].path, failures[0].reason);
  msg += "; run `fsbi plugins --verbose` to see what was found, add a folder with --plugin-path "
         "DIR or FSBI_PLUGIN_PATH, or give the plugin's path";
  throw PluginError(msg);
}

PluginRegistry::Scan PluginRegistry::scan() const {
  Scan scan;
  std::set<std::string> names;
  for (const auto& dir : search_path_)
    for (const auto& file : plugin_files(dir)) {
      try {
        auto p = Plugin::load(file.string());
        if (names.insert(p->name()).second) scan.plugins.push_back(std::move(p));
      } catch (const PluginError& e) {
        scan.failures.push_back({file.string(), e.what()});
      }
    }
  return scan;
}

std::shared_ptr<const Simulator> open_simulator(const std::string& name_or_path,
                                                const SimulatorOptions& options,
                                                const std::vector<std::string>& extra_path) {
  PluginRegistry registry(PluginRegistry::default_search_path(extra_path));
  return Simulator::create(registry.find(name_or_path), options);
}

}  // namespace fsbi
