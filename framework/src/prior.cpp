// Priors: the spec parser, the four families and their canonical printing.
//
// Hot-path contract: sample(), log_density(), grad_log_density() and in_support() never allocate.
// Everything that depends only on the prior (Cholesky factor, its inverse, the precision, the
// normalising constants) is computed once in the constructor; the Gaussian with full covariance
// works in place in the caller's spans instead of building Eigen temporaries.

#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/prior.hpp"

#include <Eigen/Cholesky>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace fsbi {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// ½·log(2π), the per-component constant of a Gaussian log-density.
constexpr double kHalfLog2Pi = 0.91893853320467274178032973640562;

// ---- Errors ---------------------------------------------------------------------------------

// User text quoted in a message, with control characters escaped so that the message stays on
// one line even for a spec read from a file with newlines in it.
std::string quoted_text(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

[[noreturn]] void fail(std::string_view spec, std::string_view what) {
  throw PriorSpecError(fmt::format("prior \"{}\": {}", quoted_text(spec), what));
}

// "1 parameter", "3 parameters".
std::string count_phrase(std::size_t n, std::string_view noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}
std::string parameters_phrase(int d) { return count_phrase(static_cast<std::size_t>(d), "parameter"); }

// The spans handed to a prior must have exactly dim() entries. A mismatch is a programming
// error in the caller, not bad user input, hence std::invalid_argument rather than PriorSpecError.
void check_size(std::size_t size, int dim, const char* what) {
  if (size != static_cast<std::size_t>(dim)) {
    throw std::invalid_argument(
        fmt::format("prior: {} has {} entries but the prior has dimension {}", what, size, dim));
  }
}

// ---- Canonical printing ---------------------------------------------------------------------

// Shortest decimal that parses back to the same double (std::to_chars' round-trip guarantee).
void append_number(std::string& out, double v) {
  std::array<char, 32> buf{};
  const auto result = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), result.ptr);
}

// Equal as printed: -0 and 0 compare equal but print differently, and a round trip must be exact.
bool identical(double a, double b) { return a == b && std::signbit(a) == std::signbit(b); }

// A scalar when every component is the same (the scalar broadcasts back), else a list.
void append_components(std::string& out, const Eigen::VectorXd& v) {
  const bool uniform = std::all_of(v.begin(), v.end(), [&](double x) { return identical(x, v[0]); });
  if (uniform) {
    append_number(out, v[0]);
    return;
  }
  out += '[';
  for (Eigen::Index i = 0; i < v.size(); ++i) {
    if (i > 0) out += ", ";
    append_number(out, v[i]);
  }
  out += ']';
}

// ---- Spec syntax ----------------------------------------------------------------------------
//
//   spec  := ws family ws '(' ws [ arg ws { ',' ws arg ws } ] ')' ws
//   arg   := number | '[' ws arg ws { ',' ws arg ws } ']'
//   number: anything std::from_chars(double) accepts, finite.
// Lists nest so that a covariance is a list of rows; which shape each argument must have is
// checked afterwards, per family, where the message can name the argument.

struct Arg {
  bool is_list = false;
  double number = 0.0;
  std::vector<Arg> items;
  std::size_t column = 0;  // 1-based position of the argument's first character, for messages
};

struct Family {
  std::string_view name;
  std::array<std::string_view, 2> arguments;
  std::string_view example;
};

constexpr std::array<Family, 4> kFamilies{{
    {"uniform", {"low", "high"}, "uniform(-1, 1)"},
    {"normal", {"mean", "sd"}, "normal(0, 1)"},
    {"mvnormal", {"mean", "covariance"}, "mvnormal([0, 0], [[1, 0.5], [0.5, 1]])"},
    {"lognormal", {"mu", "sigma"}, "lognormal(0, 0.5)"},
}};

struct Call {
  const Family* family = nullptr;
  std::vector<Arg> args;
};

class SpecParser {
 public:
  explicit SpecParser(std::string_view spec) : spec_(spec) {}

  Call parse() {
    skip_space();
    if (at_end()) fail(spec_, "the spec is empty; give a family and its arguments, e.g. uniform(-1, 1)");
    const std::size_t name_start = pos_;
    while (!at_end() && is_name_char(spec_[pos_])) ++pos_;
    if (pos_ == name_start) error_here("expected a prior family name (uniform, normal, mvnormal or lognormal)");
    const std::string_view name = spec_.substr(name_start, pos_ - name_start);
    Call call;
    for (const Family& f : kFamilies) {
      if (f.name == name) call.family = &f;
    }
    if (call.family == nullptr) {
      fail(spec_, fmt::format("unknown prior family '{}'; use uniform, normal, mvnormal or lognormal", name));
    }
    skip_space();
    if (!consume('(')) error_here(fmt::format("expected '(' after '{}'", name));
    skip_space();
    if (!consume(')')) {
      for (;;) {
        call.args.push_back(parse_arg());
        skip_space();
        if (consume(',')) continue;
        if (consume(')')) break;
        error_here("expected ',' or ')'");
      }
    }
    skip_space();
    if (!at_end()) {
      fail(spec_, fmt::format("unexpected trailing text '{}' at column {}; the spec must end after its ')'",
                              quoted_text(spec_.substr(pos_)), pos_ + 1));
    }
    return call;
  }

 private:
  // A number or a list; `depth` counts the enclosing lists. No argument nests deeper than a
  // covariance matrix (depth 2), and bounding the recursion keeps a hostile spec like
  // "[[[[…" from overflowing the stack.
  Arg parse_arg(int depth = 0) {
    skip_space();
    Arg arg;
    arg.column = pos_ + 1;
    if (peek('[') && depth == 2) {
      error_here("lists nest at most two deep (a covariance is a list of rows)");
    }
    if (consume('[')) {
      arg.is_list = true;
      skip_space();
      if (peek(']')) error_here("empty list; give at least one number");
      for (;;) {
        arg.items.push_back(parse_arg(depth + 1));
        skip_space();
        if (consume(',')) continue;
        if (consume(']')) break;
        error_here("expected ',' or ']'");
      }
      return arg;
    }
    const char* first = spec_.data() + pos_;
    const char* last = spec_.data() + spec_.size();
    const auto [ptr, ec] = std::from_chars(first, last, arg.number);  // no allocation, no locale
    if (ec == std::errc::invalid_argument) error_here("expected a number or a '[' list");
    const std::string_view text(first, static_cast<std::size_t>(ptr - first));
    if (ec == std::errc::result_out_of_range) {
      fail(spec_, fmt::format("number '{}' at column {} is out of the range of a double", text, arg.column));
    }
    if (!std::isfinite(arg.number)) {
      fail(spec_, fmt::format("number '{}' at column {} is not finite; priors take finite numbers", text,
                              arg.column));
    }
    pos_ += text.size();
    return arg;
  }

  [[noreturn]] void error_here(std::string_view what) const {
    if (at_end()) fail(spec_, fmt::format("{} at column {} (end of spec)", what, pos_ + 1));
    fail(spec_, fmt::format("{} at column {}, found '{}'", what, pos_ + 1, quoted_text(character_here())));
  }

  // The whole UTF-8 character at pos_ (e.g. a pasted '−' rather than '-'), not just its first byte.
  std::string_view character_here() const {
    const auto lead = static_cast<unsigned char>(spec_[pos_]);
    const std::size_t length = lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    return spec_.substr(pos_, length);
  }

  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  void skip_space() {
    while (!at_end() && is_space(spec_[pos_])) ++pos_;
  }
  bool at_end() const { return pos_ >= spec_.size(); }
  bool peek(char c) const { return !at_end() && spec_[pos_] == c; }
  bool consume(char c) {
    if (!peek(c)) return false;
    ++pos_;
    return true;
  }

  std::string_view spec_;
  std::size_t pos_ = 0;
};

// A per-component argument: a number broadcasts to all d components, a list gives d numbers.
struct Components {
  Eigen::VectorXd values;
  bool listed = false;  // given as a list (messages then name the component)
  std::string_view name;

  // "sd" for a broadcast scalar, "sd[1]" for a list entry.
  std::string label(Eigen::Index i) const {
    return listed ? fmt::format("{}[{}]", name, i) : std::string(name);
  }
};

Components per_component(std::string_view spec, const Arg& arg, std::string_view name, int d) {
  Components c{Eigen::VectorXd(d), arg.is_list, name};
  if (!arg.is_list) {
    c.values.setConstant(arg.number);
    return c;
  }
  for (const Arg& item : arg.items) {
    if (item.is_list) {
      fail(spec, fmt::format("{} must be a number or a list of numbers, but has a nested list at column {}",
                             name, item.column));
    }
  }
  if (std::cmp_not_equal(arg.items.size(), d)) {
    fail(spec, fmt::format("{} has {} but the simulator has {}; give {}, or one number for all", name,
                           count_phrase(arg.items.size(), "value"), parameters_phrase(d),
                           count_phrase(static_cast<std::size_t>(d), "value")));
  }
  for (int i = 0; i < d; ++i) c.values[i] = arg.items[static_cast<std::size_t>(i)].number;
  return c;
}

Eigen::MatrixXd square_matrix(std::string_view spec, const Arg& arg, std::string_view name, int d) {
  // "write it as 2 rows of 2 numbers, e.g. [[1, 0], [0, 1]]" (the example only while it stays short).
  const auto shape_hint = [&] {
    std::string hint = fmt::format("write it as {} of {}", count_phrase(static_cast<std::size_t>(d), "row"),
                                   count_phrase(static_cast<std::size_t>(d), "number"));
    if (d > 4) return hint;
    hint += ", e.g. [";
    for (int i = 0; i < d; ++i) {
      hint += i > 0 ? ", [" : "[";
      for (int j = 0; j < d; ++j) hint += (j > 0 ? ", " : "") + std::string(i == j ? "1" : "0");
      hint += ']';
    }
    return hint + ']';
  };
  if (!arg.is_list) {
    fail(spec, fmt::format("{} must be a {}x{} matrix, got the number {}; {} (for independent components use "
                           "normal(mean, sd))",
                           name, d, d, arg.number, shape_hint()));
  }
  if (std::cmp_not_equal(arg.items.size(), d)) {
    fail(spec, fmt::format("{} has {} but the simulator has {}; {}", name, count_phrase(arg.items.size(), "row"),
                           parameters_phrase(d), shape_hint()));
  }
  Eigen::MatrixXd m(d, d);
  for (int i = 0; i < d; ++i) {
    const Arg& row = arg.items[static_cast<std::size_t>(i)];
    if (!row.is_list) {
      fail(spec, fmt::format("{} row {} (column {}) is a number, not a list; {}", name, i, row.column,
                             shape_hint()));
    }
    if (std::cmp_not_equal(row.items.size(), d)) {
      fail(spec, fmt::format("{} row {} has {} but the simulator has {}; {}", name, i,
                             count_phrase(row.items.size(), "value"), parameters_phrase(d), shape_hint()));
    }
    for (int j = 0; j < d; ++j) {
      const Arg& entry = row.items[static_cast<std::size_t>(j)];
      if (entry.is_list) {
        fail(spec, fmt::format("{} has a list nested too deep at column {}; {}", name, entry.column,
                               shape_hint()));
      }
      m(i, j) = entry.number;
    }
  }
  return m;
}

bool all_finite(std::span<const double> theta) {
  return std::all_of(theta.begin(), theta.end(), [](double t) { return std::isfinite(t); });
}

// ---- Families -------------------------------------------------------------------------------

// θ_i ~ U(low_i, high_i) independently; support the closed box [low, high].
class UniformPrior final : public Prior {
 public:
  UniformPrior(Eigen::VectorXd low, Eigen::VectorXd high)
      : Prior(static_cast<int>(low.size())),
        low_(std::move(low)),
        high_(std::move(high)),
        log_density_(-(high_ - low_).array().log().sum()) {}

  void sample(CounterRng& rng, std::span<double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    for (int i = 0; i < dim(); ++i) {
      // low + (high - low)·u with u ∈ (0, 1) can round onto or just past a face; the clamp keeps
      // every draw inside the (closed) support.
      theta[i] = std::clamp(rng.uniform(low_[i], high_[i]), low_[i], high_[i]);
    }
  }

  double log_density(std::span<const double> theta) const override {
    return in_support(theta) ? log_density_ : -kInf;
  }

  void grad_log_density(std::span<const double> theta, std::span<double> grad) const override {
    check_size(theta.size(), dim(), "theta");
    check_size(grad.size(), dim(), "grad");
    std::fill(grad.begin(), grad.end(), 0.0);
  }

  bool in_support(std::span<const double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    for (int i = 0; i < dim(); ++i) {
      if (!(low_[i] <= theta[i] && theta[i] <= high_[i])) return false;  // NaN is outside
    }
    return true;
  }

  std::string spec() const override {
    std::string s = "uniform(";
    append_components(s, low_);
    s += ", ";
    append_components(s, high_);
    s += ')';
    return s;
  }

  std::string_view kind() const override { return "uniform"; }
  Eigen::VectorXd lower_bounds() const override { return low_; }
  Eigen::VectorXd upper_bounds() const override { return high_; }

 private:
  Eigen::VectorXd low_, high_;
  double log_density_;  // -Σ log(high_i - low_i)
};

// θ_i ~ N(mean_i, sd_i²) independently.
class NormalPrior final : public Prior {
 public:
  NormalPrior(Eigen::VectorXd mean, Eigen::VectorXd sd)
      : Prior(static_cast<int>(mean.size())),
        mean_(std::move(mean)),
        sd_(std::move(sd)),
        inv_var_(sd_.array().square().inverse().matrix()),
        log_norm_(-sd_.array().log().sum() - dim() * kHalfLog2Pi) {}

  void sample(CounterRng& rng, std::span<double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    for (int i = 0; i < dim(); ++i) theta[i] = mean_[i] + sd_[i] * rng.normal();
  }

  double log_density(std::span<const double> theta) const override {
    if (!in_support(theta)) return -kInf;
    double quad = 0.0;
    for (int i = 0; i < dim(); ++i) {
      const double delta = theta[i] - mean_[i];
      quad += delta * delta * inv_var_[i];
    }
    return log_norm_ - 0.5 * quad;
  }

  void grad_log_density(std::span<const double> theta, std::span<double> grad) const override {
    check_size(theta.size(), dim(), "theta");
    check_size(grad.size(), dim(), "grad");
    for (int i = 0; i < dim(); ++i) grad[i] = -(theta[i] - mean_[i]) * inv_var_[i];
  }

  bool in_support(std::span<const double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    return all_finite(theta);
  }

  std::string spec() const override {
    std::string s = "normal(";
    append_components(s, mean_);
    s += ", ";
    append_components(s, sd_);
    s += ')';
    return s;
  }

  std::string_view kind() const override { return "normal"; }
  std::optional<GaussianForm> gaussian_form() const override {
    return GaussianForm{mean_, sd_.array().square().matrix().asDiagonal()};
  }
  Eigen::VectorXd lower_bounds() const override { return Eigen::VectorXd::Constant(dim(), -kInf); }
  Eigen::VectorXd upper_bounds() const override { return Eigen::VectorXd::Constant(dim(), kInf); }

 private:
  Eigen::VectorXd mean_, sd_;
  Eigen::VectorXd inv_var_;  // 1 / sd_i²
  double log_norm_;          // -Σ log sd_i - d·½log 2π
};

// θ ~ N(mean, Σ) with Σ = L Lᵀ (Cholesky, L lower triangular).
//   sample:  θ = mean + L z, z ~ N(0, I_d)                                  (d normals)
//   log π:   -d·½log 2π - Σ log L_ii - ½‖L⁻¹(θ - mean)‖²
//   ∇ log π: -Σ⁻¹(θ - mean)
class MvNormalPrior final : public Prior {
 public:
  // Contract: covariance is symmetric and positive definite with Cholesky factor `chol`.
  MvNormalPrior(Eigen::VectorXd mean, Eigen::MatrixXd covariance, const Eigen::MatrixXd& chol)
      : Prior(static_cast<int>(mean.size())),
        mean_(std::move(mean)),
        covariance_(std::move(covariance)),
        chol_(chol.triangularView<Eigen::Lower>()),
        chol_inv_(chol_.triangularView<Eigen::Lower>().solve(Eigen::MatrixXd::Identity(dim(), dim()))),
        precision_(chol_inv_.transpose() * chol_inv_),
        log_norm_(-chol_.diagonal().array().log().sum() - dim() * kHalfLog2Pi) {}

  void sample(CounterRng& rng, std::span<double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    const int d = dim();
    for (int i = 0; i < d; ++i) theta[i] = rng.normal();  // z, drawn in component order
    // θ = mean + L z in place: row i of L reads z_0..z_i only, so going from the last row up,
    // every z_j a row needs is still unoverwritten.
    for (int i = d - 1; i >= 0; --i) {
      double acc = 0.0;
      for (int j = 0; j <= i; ++j) acc += chol_(i, j) * theta[j];
      theta[i] = mean_[i] + acc;
    }
  }

  double log_density(std::span<const double> theta) const override {
    if (!in_support(theta)) return -kInf;
    // ‖L⁻¹δ‖² one component of L⁻¹δ at a time: a sum of squares, so never negative from rounding.
    double quad = 0.0;
    for (int i = 0; i < dim(); ++i) {
      double w = 0.0;
      for (int j = 0; j <= i; ++j) w += chol_inv_(i, j) * (theta[j] - mean_[j]);
      quad += w * w;
    }
    return log_norm_ - 0.5 * quad;
  }

  void grad_log_density(std::span<const double> theta, std::span<double> grad) const override {
    check_size(theta.size(), dim(), "theta");
    check_size(grad.size(), dim(), "grad");
    for (int i = 0; i < dim(); ++i) {
      double acc = 0.0;
      for (int j = 0; j < dim(); ++j) acc += precision_(i, j) * (theta[j] - mean_[j]);
      grad[i] = -acc;
    }
  }

  bool in_support(std::span<const double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    return all_finite(theta);
  }

  std::string spec() const override {
    std::string s = "mvnormal(";
    append_components(s, mean_);
    s += ", [";
    for (int i = 0; i < dim(); ++i) {
      if (i > 0) s += ", ";
      s += '[';
      for (int j = 0; j < dim(); ++j) {
        if (j > 0) s += ", ";
        append_number(s, covariance_(i, j));
      }
      s += ']';
    }
    s += "])";
    return s;
  }

  std::string_view kind() const override { return "mvnormal"; }
  std::optional<GaussianForm> gaussian_form() const override {
    return GaussianForm{mean_, covariance_};
  }
  Eigen::VectorXd lower_bounds() const override { return Eigen::VectorXd::Constant(dim(), -kInf); }
  Eigen::VectorXd upper_bounds() const override { return Eigen::VectorXd::Constant(dim(), kInf); }

 private:
  Eigen::VectorXd mean_;
  Eigen::MatrixXd covariance_;  // as given, for spec()
  Eigen::MatrixXd chol_;        // L, lower triangular (upper part zero)
  Eigen::MatrixXd chol_inv_;    // L⁻¹, lower triangular
  Eigen::MatrixXd precision_;   // Σ⁻¹ = L⁻ᵀL⁻¹
  double log_norm_;             // -Σ log L_ii - d·½log 2π  (= -½log det Σ - d·½log 2π)
};

// log θ_i ~ N(mu_i, sigma_i²) independently; support θ_i ∈ (0, ∞).
//   log π(θ) = Σ_i [ -log θ_i - log sigma_i - ½log 2π - (log θ_i - mu_i)² / (2 sigma_i²) ]
//   ∂/∂θ_i   = -(1 + (log θ_i - mu_i) / sigma_i²) / θ_i
class LogNormalPrior final : public Prior {
 public:
  LogNormalPrior(Eigen::VectorXd mu, Eigen::VectorXd sigma)
      : Prior(static_cast<int>(mu.size())),
        mu_(std::move(mu)),
        sigma_(std::move(sigma)),
        inv_var_(sigma_.array().square().inverse().matrix()),
        log_norm_(-sigma_.array().log().sum() - dim() * kHalfLog2Pi) {}

  void sample(CounterRng& rng, std::span<double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    for (int i = 0; i < dim(); ++i) theta[i] = std::exp(mu_[i] + sigma_[i] * rng.normal());
  }

  double log_density(std::span<const double> theta) const override {
    if (!in_support(theta)) return -kInf;
    double acc = log_norm_;
    for (int i = 0; i < dim(); ++i) {
      const double log_theta = std::log(theta[i]);
      const double delta = log_theta - mu_[i];
      acc -= log_theta + 0.5 * delta * delta * inv_var_[i];
    }
    return acc;
  }

  void grad_log_density(std::span<const double> theta, std::span<double> grad) const override {
    check_size(theta.size(), dim(), "theta");
    check_size(grad.size(), dim(), "grad");
    for (int i = 0; i < dim(); ++i) {
      grad[i] = -(1.0 + (std::log(theta[i]) - mu_[i]) * inv_var_[i]) / theta[i];
    }
  }

  bool in_support(std::span<const double> theta) const override {
    check_size(theta.size(), dim(), "theta");
    return std::all_of(theta.begin(), theta.end(), [](double t) { return t > 0.0 && t < kInf; });
  }

  std::string spec() const override {
    std::string s = "lognormal(";
    append_components(s, mu_);
    s += ", ";
    append_components(s, sigma_);
    s += ')';
    return s;
  }

  std::string_view kind() const override { return "lognormal"; }
  std::optional<GaussianForm> gaussian_form() const override {
    return GaussianForm{mu_, sigma_.array().square().matrix().asDiagonal()};
  }
  Eigen::VectorXd lower_bounds() const override { return Eigen::VectorXd::Zero(dim()); }
  Eigen::VectorXd upper_bounds() const override { return Eigen::VectorXd::Constant(dim(), kInf); }

 private:
  Eigen::VectorXd mu_, sigma_;
  Eigen::VectorXd inv_var_;  // 1 / sigma_i²
  double log_norm_;          // -Σ log sigma_i - d·½log 2π
};

// ---- Family construction with validation ------------------------------------------------------

void require_positive(std::string_view spec, const Components& c, std::string_view what) {
  for (Eigen::Index i = 0; i < c.values.size(); ++i) {
    if (!(c.values[i] > 0.0)) {
      fail(spec, fmt::format("{} needs {} > 0, but {} = {}; use a positive {}", what, c.name, c.label(i),
                             c.values[i], c.name));
    }
    if (!c.listed) break;  // a broadcast scalar: one message, not d
  }
}

std::unique_ptr<Prior> make_uniform(std::string_view spec, const Call& call, int d) {
  const Components low = per_component(spec, call.args[0], "low", d);
  const Components high = per_component(spec, call.args[1], "high", d);
  for (int i = 0; i < d; ++i) {
    if (!(low.values[i] < high.values[i])) {
      fail(spec, fmt::format("uniform needs low < high, but {} = {} >= {} = {}; swap them or widen the interval",
                             low.label(i), low.values[i], high.label(i), high.values[i]));
    }
    if (!std::isfinite(high.values[i] - low.values[i])) {
      fail(spec, fmt::format("the width {} - {} overflows a double ({} = {}, {} = {}); use a narrower interval",
                             high.label(i), low.label(i), low.label(i), low.values[i], high.label(i),
                             high.values[i]));
    }
  }
  return std::make_unique<UniformPrior>(low.values, high.values);
}

std::unique_ptr<Prior> make_normal(std::string_view spec, const Call& call, int d) {
  const Components mean = per_component(spec, call.args[0], "mean", d);
  const Components sd = per_component(spec, call.args[1], "sd", d);
  require_positive(spec, sd, "normal");
  return std::make_unique<NormalPrior>(mean.values, sd.values);
}

std::unique_ptr<Prior> make_mvnormal(std::string_view spec, const Call& call, int d) {
  const Components mean = per_component(spec, call.args[0], "mean", d);
  Eigen::MatrixXd cov = square_matrix(spec, call.args[1], "covariance", d);
  // Exact symmetry: the spec is what the user wrote and what files store, so an asymmetric
  // matrix is a typo to report, not something to average away silently.
  for (int i = 0; i < d; ++i) {
    for (int j = i + 1; j < d; ++j) {
      if (!(cov(i, j) == cov(j, i))) {
        fail(spec, fmt::format("covariance is not symmetric: covariance[{}][{}] = {} but covariance[{}][{}] = {}; "
                               "make them equal",
                               i, j, cov(i, j), j, i, cov(j, i)));
      }
    }
  }
  const Eigen::LLT<Eigen::MatrixXd> llt(cov);
  // LLT only fails on a non-positive pivot; a pivot that is positive but lost in rounding
  // (a conditional variance L_ii² below ~64 ulp of the variance Σ_ii) means a numerically
  // singular matrix, whose log-density and gradient would be garbage.
  bool positive_definite = llt.info() == Eigen::Success;
  if (positive_definite) {
    const Eigen::MatrixXd l = llt.matrixL();
    for (int i = 0; i < d; ++i) {
      const double conditional_variance = l(i, i) * l(i, i);
      if (!(conditional_variance > 64.0 * std::numeric_limits<double>::epsilon() * cov(i, i))) {
        positive_definite = false;
      }
    }
  }
  if (!positive_definite) {
    fail(spec, "covariance is not positive definite (its Cholesky factorisation fails or is numerically "
               "singular); the variances on the diagonal must be > 0 and every correlation strictly between "
               "-1 and 1");
  }
  const Eigen::MatrixXd chol = llt.matrixL();
  return std::make_unique<MvNormalPrior>(mean.values, std::move(cov), chol);
}

std::unique_ptr<Prior> make_lognormal(std::string_view spec, const Call& call, int d) {
  const Components mu = per_component(spec, call.args[0], "mu", d);
  const Components sigma = per_component(spec, call.args[1], "sigma", d);
  require_positive(spec, sigma, "lognormal");
  return std::make_unique<LogNormalPrior>(mu.values, sigma.values);
}

}  // namespace

std::unique_ptr<Prior> parse_prior(std::string_view spec, int dim) {
  if (dim < 1) {
    fail(spec, fmt::format("the simulator has {} parameters; a prior needs at least one", dim));
  }
  const Call call = SpecParser(spec).parse();
  const Family& family = *call.family;
  if (call.args.size() != family.arguments.size()) {
    fail(spec, fmt::format("{} takes {} arguments ({}, {}), got {}; example: {}", family.name,
                           family.arguments.size(), family.arguments[0], family.arguments[1],
                           call.args.size(), family.example));
  }
  if (family.name == "uniform") return make_uniform(spec, call, dim);
  if (family.name == "normal") return make_normal(spec, call, dim);
  if (family.name == "mvnormal") return make_mvnormal(spec, call, dim);
  return make_lognormal(spec, call, dim);
}

}  // namespace fsbi
