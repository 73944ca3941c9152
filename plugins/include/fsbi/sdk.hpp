// fsbi plugin SDK: write one class, add one macro, get an fsbi simulator plugin.
//
//   #include <fsbi/sdk.hpp>
//
//   class MyModel {
//    public:
//     explicit MyModel(const fsbi::sdk::Options& options)     // validate options here
//         : noise_(options.get_double("noise", 0.1)) {}
//     fsbi::sdk::Info info() const {                            // names, dims, default prior
//       return {.parameter_names = {"mu"}, .data_names = {"x"},
//               .default_prior = "normal(0, 1)"};
//     }
//     void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
//       x[0] = theta[0] + noise_ * rng.normal();
//     }
//    private:
//     double noise_;
//   };
//
//   FSBI_SIMULATOR(MyModel, "my_model", "1.0.0", "a one-line description")
//
// The class is constructed once per worker thread (so it may keep scratch state in members) and
// once on the main thread for its metadata. simulate() throwing marks that one simulation as
// failed with the exception's message; writing a non-finite value is caught by the host.
// Optional members, detected at compile time:
//   static constexpr const char* options_help = "noise=FLOAT  observation noise (default 0.1)";
//   void likelihood_score(std::span<const double> theta, std::span<const double> x,
//                         std::span<double> score) const;   // analytic ∇θ log p(x|θ)
//
// Everything here is header-only and compiles into the plugin: nothing of fsbi is linked.
#pragma once

#include <fsbi/simulator_abi.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fsbi::sdk {

// Thrown from a simulator's constructor for a bad option; becomes FSBI_INVALID_OPTION.
class OptionError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The user's `--sim-opt key=value` options. Every get_*() marks its key as known; after the
// constructor, an option no get_*() asked for is reported as unknown.
class Options {
 public:
  Options() = default;
  explicit Options(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  bool has(const std::string& key) const { return values_.count(key) != 0; }

  std::string get_string(const std::string& key, const std::string& fallback) const {
    used_.insert(key);
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }

  double get_double(const std::string& key, double fallback) const {
    used_.insert(key);
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    double v = 0;
    const std::string& s = it->second;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size())
      throw OptionError("option '" + key + "': '" + s + "' is not a number");
    return v;
  }

  long long get_int(const std::string& key, long long fallback, long long min_value,
                    long long max_value) const {
    used_.insert(key);
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    long long v = 0;
    const std::string& s = it->second;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size())
      throw OptionError("option '" + key + "': '" + s + "' is not an integer");
    if (v < min_value || v > max_value)
      throw OptionError("option '" + key + "': " + s + " is out of range; use " +
                        std::to_string(min_value) + ".." + std::to_string(max_value));
    return v;
  }

  // Keys that were given but never asked for (typos, options of another simulator).
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : values_)
      if (!used_.count(k)) out.push_back(k);
    return out;
  }

  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
  mutable std::set<std::string> used_;
};

// Metadata of a configured simulator.
struct Info {
  std::vector<std::string> parameter_names;  // d entries
  std::vector<std::string> data_names;       // k entries
  std::string default_prior;                 // prior spec (docs/priors.md); empty: none
};

// The host's random stream for one simulation. Cheap to copy; valid during simulate().
class Rng {
 public:
  explicit Rng(fsbi_rng* rng) : rng_(rng) {}
  double uniform() { return rng_->api->uniform(rng_); }  // (0, 1)
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  double normal() { return rng_->api->normal(rng_); }
  double normal(double mean, double sd) { return mean + sd * normal(); }
  std::uint64_t next_u64() { return rng_->api->next_u64(rng_); }
  void fill_uniform(std::span<double> out) { rng_->api->fill_uniform(rng_, out.data(), out.size()); }
  void fill_normal(std::span<double> out) { rng_->api->fill_normal(rng_, out.data(), out.size()); }

 private:
  fsbi_rng* rng_;
};

namespace detail {

inline void write_message(fsbi_message* m, std::string_view text) {
  if (!m) return;
  const std::size_t n = std::min(text.size(), sizeof(m->text) - 1);
  std::memcpy(m->text, text.data(), n);
  m->text[n] = '\0';
}

template <class T>
concept HasOptionsHelp = requires { { T::options_help } -> std::convertible_to<const char*>; };

template <class T>
concept HasLikelihoodScore = requires(const T& t, std::span<const double> a,
                                      std::span<const double> b, std::span<double> c) {
  t.likelihood_score(a, b, c);
};

// The configured simulator: options + metadata, kept alive for the lifetime of the fsbi_simulator.
template <class T>
struct Configured {
  fsbi_simulator c_api{};
  Options options;
  std::unique_ptr<T> prototype;  // main-thread instance: metadata and the likelihood score
  Info info;
  std::vector<const char*> parameter_name_ptrs, data_name_ptrs;
  fsbi_simulator_info c_info{};
};

template <class T>
Configured<T>* self_of(const fsbi_simulator* s) {
  return static_cast<Configured<T>*>(s->impl);
}

template <class T>
const fsbi_simulator_info* info(const fsbi_simulator* self) noexcept {
  return &self_of<T>(self)->c_info;
}

template <class T>
fsbi_status create_instance(const fsbi_simulator* self, void** instance,
                            fsbi_message* error) noexcept {
  try {
    *instance = new T(self_of<T>(self)->options);
    return FSBI_OK;
  } catch (const std::exception& e) {
    write_message(error, e.what());
  } catch (...) {
    write_message(error, "unknown exception while creating a simulator instance");
  }
  return FSBI_ERROR;
}

template <class T>
void destroy_instance(const fsbi_simulator*, void* instance) noexcept {
  delete static_cast<T*>(instance);
}

template <class T>
fsbi_status simulate(const fsbi_simulator* self, void* instance, std::uint64_t n,
                     const double* theta, double* x, fsbi_rng* rng, fsbi_status* row_status,
                     fsbi_message* error) noexcept {
  const fsbi_simulator_info& inf = self_of<T>(self)->c_info;
  const std::size_t d = inf.parameter_dim, k = inf.data_dim;
  T& sim = *static_cast<T*>(instance);
  bool reported = false;
  for (std::uint64_t i = 0; i < n; ++i) {
    try {
      Rng r(&rng[i]);
      sim.simulate(std::span<const double>(theta + i * d, d), std::span<double>(x + i * k, k), r);
      row_status[i] = FSBI_OK;
    } catch (const std::exception& e) {
      row_status[i] = FSBI_SIMULATION_FAILED;
      if (!reported) write_message(error, e.what());
      reported = true;
    } catch (...) {
      row_status[i] = FSBI_SIMULATION_FAILED;
      if (!reported) write_message(error, "unknown exception in simulate()");
      reported = true;
    }
  }
  return FSBI_OK;
}

template <class T>
fsbi_status likelihood_score(const fsbi_simulator* self, std::uint64_t n, const double* theta,
                             const double* x, double* score, fsbi_message* error) noexcept {
  if constexpr (HasLikelihoodScore<T>) {
    try {
      const Configured<T>& c = *self_of<T>(self);
      const std::size_t d = c.c_info.parameter_dim, k = c.c_info.data_dim;
      for (std::uint64_t i = 0; i < n; ++i)
        c.prototype->likelihood_score(std::span<const double>(theta + i * d, d),
                                      std::span<const double>(x + i * k, k),
                                      std::span<double>(score + i * d, d));
      return FSBI_OK;
    } catch (const std::exception& e) {
      write_message(error, e.what());
    } catch (...) {
      write_message(error, "unknown exception in likelihood_score()");
    }
  } else {
    (void)self, (void)n, (void)theta, (void)x, (void)score;
    write_message(error, "likelihood score not supported");
  }
  return FSBI_ERROR;
}

template <class T>
inline constexpr fsbi_ext_likelihood_score likelihood_score_ext{&likelihood_score<T>};

template <class T>
const void* get_extension(const fsbi_simulator*, const char* id) noexcept {
  if constexpr (HasLikelihoodScore<T>) {
    if (id && std::strcmp(id, FSBI_EXT_LIKELIHOOD_SCORE) == 0) return &likelihood_score_ext<T>;
  }
  (void)id;
  return nullptr;
}

template <class T>
void destroy(fsbi_simulator* self) noexcept {
  delete self_of<T>(self);
}

template <class T>
fsbi_status create(const fsbi_host*, const fsbi_option* options, std::uint32_t n_options,
                   fsbi_simulator** out, fsbi_message* error) noexcept {
  try {
    auto c = std::make_unique<Configured<T>>();
    std::map<std::string, std::string> values;
    for (std::uint32_t i = 0; i < n_options; ++i) {
      if (!options[i].key || !options[i].value)
        throw OptionError("option " + std::to_string(i) + " has a null key or value");
      values[options[i].key] = options[i].value;
    }
    c->options = Options(std::move(values));
    c->prototype = std::make_unique<T>(c->options);
    if (auto unknown = c->options.unused(); !unknown.empty()) {
      std::string msg = "unknown option '" + unknown.front() + "'";
      if constexpr (HasOptionsHelp<T>) {
        msg += "; accepted options: ";
        msg += T::options_help;
      } else {
        msg += "; this simulator takes no options";
      }
      throw OptionError(msg);
    }
    c->info = c->prototype->info();
    for (const auto& s : c->info.parameter_names) c->parameter_name_ptrs.push_back(s.c_str());
    for (const auto& s : c->info.data_names) c->data_name_ptrs.push_back(s.c_str());
    c->c_info.parameter_dim = static_cast<std::uint32_t>(c->info.parameter_names.size());
    c->c_info.data_dim = static_cast<std::uint32_t>(c->info.data_names.size());
    c->c_info.parameter_names = c->parameter_name_ptrs.data();
    c->c_info.data_names = c->data_name_ptrs.data();
    c->c_info.default_prior = c->info.default_prior.empty() ? nullptr : c->info.default_prior.c_str();
    c->c_api = fsbi_simulator{c.get(),          &detail::info<T>,    &create_instance<T>,
                              &destroy_instance<T>, &simulate<T>,   &get_extension<T>,
                              &destroy<T>};
    *out = &c.release()->c_api;
    return FSBI_OK;
  } catch (const OptionError& e) {
    write_message(error, e.what());
    return FSBI_INVALID_OPTION;
  } catch (const std::invalid_argument& e) {
    write_message(error, e.what());
    return FSBI_INVALID_OPTION;
  } catch (const std::exception& e) {
    write_message(error, e.what());
  } catch (...) {
    write_message(error, "unknown exception while configuring the simulator");
  }
  return FSBI_ERROR;
}

template <class T>
constexpr const char* options_help_of() {
  if constexpr (HasOptionsHelp<T>) return T::options_help;
  else return nullptr;
}

template <class T>
constexpr fsbi_plugin_entry make_entry(const char* name, const char* version,
                                       const char* description) {
  return fsbi_plugin_entry{FSBI_ABI_VERSION, name, version, description, options_help_of<T>(),
                           &create<T>};
}

}  // namespace detail
}  // namespace fsbi::sdk

// Defines the plugin's single exported, constant-initialised entry object.
#define FSBI_SIMULATOR(Class, Name, Version, Description)                              \
  extern "C" __attribute__((visibility("default"))) constinit const fsbi_plugin_entry \
      fsbi_simulator_entry = ::fsbi::sdk::detail::make_entry<Class>(Name, Version, Description);
