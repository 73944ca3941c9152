#include "model_file.hpp"

#include "file_stamp.hpp"

#include "fsbi/version.hpp"

#include <fmt/format.h>

namespace fsbi {

namespace {

std::vector<double> to_vector(const Eigen::VectorXd& v) { return {v.data(), v.data() + v.size()}; }
Eigen::VectorXd to_eigen(const std::vector<double>& v) {
  return Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size()));
}

void write_vector(h5::Group& g, const std::string& name, const std::vector<double>& v) {
  h5::Dataset ds = g.create_dataset(name, h5::DType::f64, {v.size()});
  if (!v.empty()) ds.write_rows(0, v.size(), std::span<const double>(v));
}

std::vector<double> read_vector(const h5::Group& g, const std::string& name) {
  return g.open_dataset(name).read_all_double();
}

}  // namespace

void write_model(h5::File& file, const StoredModel& m) {
  stamp_fsbi_file(file);
  write_model_group(file, m, "model");
}

void write_model_group(h5::Group& parent, const StoredModel& m, std::string_view name) {
  h5::Group g = parent.create_group(name);
  const ModelInfo& i = m.info;
  g.set_attribute("model_format_version", static_cast<std::int64_t>(model_format_version));
  g.set_attribute("model_kind", i.kind);
  g.set_attribute("activation", i.activation);
  std::vector<std::int64_t> hidden(i.hidden.begin(), i.hidden.end());
  g.set_attribute("hidden", std::span<const std::int64_t>(hidden));
  g.set_attribute("ensemble_members", static_cast<std::int64_t>(m.members));
  g.set_attribute("objective", i.objective);
  g.set_attribute("theta_dim", static_cast<std::int64_t>(m.architecture.theta_dim));
  g.set_attribute("x_dim", static_cast<std::int64_t>(m.architecture.x_dim));
  g.set_attribute("parameter_names", i.parameter_names);
  g.set_attribute("data_names", i.data_names);
  g.set_attribute("simulator_name", i.simulator_name);
  g.set_attribute("simulator_version", i.simulator_version);
  g.set_attribute("simulator_options", i.simulator_options);
  g.set_attribute("prior", i.prior);
  g.set_attribute("training_data", i.training_data);
  if (!i.training_proposal.empty()) g.set_attribute("training_proposal", i.training_proposal);
  g.set_attribute("seed", i.seed);
  g.set_attribute("num_train", static_cast<std::int64_t>(i.num_train));
  g.set_attribute("num_validation", static_cast<std::int64_t>(i.num_validation));
  g.set_attribute("epochs", static_cast<std::int64_t>(i.epochs));
  g.set_attribute("best_epoch", static_cast<std::int64_t>(i.best_epoch));
  g.set_attribute("best_validation_loss", i.best_validation_loss);
  g.set_attribute("batch_size", static_cast<std::int64_t>(i.batch_size));
  g.set_attribute("latent_sigma", i.latent_sigma);
  g.set_attribute("box_weight", i.box_weight);

  // Network weights: float32, the precision the model was trained and is evaluated in.
  {
    h5::Dataset ds = g.create_dataset("network_parameters", h5::DType::f32,
                                      {static_cast<std::uint64_t>(m.parameters.size())});
    Eigen::VectorXd as_double = m.parameters.cast<double>();  // converted back to f32 on disk
    ds.write_rows(0, static_cast<std::uint64_t>(as_double.size()), std::span<const double>(as_double.data(), as_double.size()));
  }
  h5::Group t = g.create_group("transform");
  std::vector<std::string> maps;
  for (auto c : m.transform.maps()) maps.emplace_back(to_string(c));
  t.set_attribute("maps", maps);
  write_vector(t, "low", to_vector(m.transform.low()));
  write_vector(t, "high", to_vector(m.transform.high()));
  write_vector(t, "feature_mean", to_vector(m.features.mean()));
  write_vector(t, "feature_scale", to_vector(m.features.scale()));
  write_vector(t, "x_mean", to_vector(m.x_standardizer.mean()));
  write_vector(t, "x_scale", to_vector(m.x_standardizer.scale()));
  write_vector(t, "u_min", i.u_min);
  write_vector(t, "u_max", i.u_max);
  h5::Group h = g.create_group("history");
  write_vector(h, "train_loss", i.train_loss);
  write_vector(h, "validation_loss", i.validation_loss);
  write_vector(h, "learning_rate", i.learning_rate);
}

StoredModel read_model(h5::File& file) {
  const std::string& path = file.filename();
  if (!file.exists("model"))
    throw ModelError(fmt::format("{}: no /model group (not a trained model); train one with `fsbi train`", path));
  try {
    h5::Group g = file.open_group("model");
    const auto version = g.attribute_int("model_format_version");
    if (version != model_format_version)
      throw ModelError(fmt::format("{}: model format version {} is not supported by this fsbi (reads {}); "
                                   "use the fsbi version that wrote it or retrain",
                                   path, version, model_format_version));
    StoredModel m;
    ModelInfo& i = m.info;
    i.kind = g.attribute_string("model_kind");
    i.activation = g.attribute_string("activation");
    for (auto w : g.attribute_ints("hidden")) i.hidden.push_back(static_cast<int>(w));
    m.members = g.has_attribute("ensemble_members") ? static_cast<int>(g.attribute_int("ensemble_members")) : 1;
    if (m.members < 1)
      throw ModelError(fmt::format("{}: /model ensemble_members is {}, expected at least 1", path, m.members));
    i.ensemble = m.members;
    i.objective = g.attribute_string("objective");
    i.parameter_names = g.attribute_strings("parameter_names");
    i.data_names = g.attribute_strings("data_names");
    i.simulator_name = g.attribute_string("simulator_name");
    i.simulator_version = g.attribute_string("simulator_version");
    i.simulator_options = g.attribute_string("simulator_options");
    i.prior = g.attribute_string("prior");
    i.training_data = g.attribute_string("training_data");
    if (g.has_attribute("training_proposal")) i.training_proposal = g.attribute_string("training_proposal");
    i.seed = g.attribute_uint("seed");
    i.num_train = static_cast<std::uint64_t>(g.attribute_int("num_train"));
    i.num_validation = static_cast<std::uint64_t>(g.attribute_int("num_validation"));
    i.epochs = static_cast<int>(g.attribute_int("epochs"));
    i.best_epoch = static_cast<int>(g.attribute_int("best_epoch"));
    i.best_validation_loss = g.attribute_double("best_validation_loss");
    if (g.has_attribute("batch_size")) i.batch_size = static_cast<int>(g.attribute_int("batch_size"));
    i.latent_sigma = g.attribute_double("latent_sigma");
    if (g.has_attribute("box_weight")) i.box_weight = g.attribute_string("box_weight");

    m.architecture.kind = nn::parse_model_kind(i.kind);
    m.architecture.activation = nn::parse_activation(i.activation);
    m.architecture.hidden = i.hidden;
    m.architecture.theta_dim = static_cast<int>(g.attribute_int("theta_dim"));
    m.architecture.x_dim = static_cast<int>(g.attribute_int("x_dim"));
    const auto d = static_cast<std::size_t>(m.architecture.theta_dim);
    const auto k = static_cast<std::size_t>(m.architecture.x_dim);
    if (i.parameter_names.size() != d || i.data_names.size() != k)
      throw ModelError(fmt::format("{}: /model names do not match theta_dim {} and x_dim {}", path, d, k));

    const auto params = g.open_dataset("network_parameters").read_all_double();
    m.parameters = Eigen::Map<const Eigen::VectorXd>(params.data(), static_cast<Eigen::Index>(params.size())).cast<float>();
    nn::ScoreNetwork<float> probe(m.architecture);
    if (probe.num_parameters() * m.members != m.parameters.size())
      throw ModelError(fmt::format("{}: /model/network_parameters has {} values but the architecture needs {} ({} x {})",
                                   path, m.parameters.size(), probe.num_parameters() * m.members, m.members,
                                   probe.num_parameters()));

    h5::Group t = g.open_group("transform");
    std::vector<CoordinateMap> maps;
    for (const auto& s : t.attribute_strings("maps")) maps.push_back(parse_coordinate_map(s));
    const auto check = [&](const std::vector<double>& v, std::size_t n, const char* name) {
      if (v.size() != n)
        throw ModelError(fmt::format("{}: /model/transform/{} has {} values, expected {}", path, name, v.size(), n));
      return to_eigen(v);
    };
    if (maps.size() != d) throw ModelError(fmt::format("{}: /model/transform has {} maps, expected {}", path, maps.size(), d));
    m.transform = ParameterTransform(maps, check(read_vector(t, "low"), d, "low"), check(read_vector(t, "high"), d, "high"));
    m.features = FeatureMap(maps, check(read_vector(t, "feature_mean"), d, "feature_mean"),
                            check(read_vector(t, "feature_scale"), d, "feature_scale"));
    m.x_standardizer = Standardizer(check(read_vector(t, "x_mean"), k, "x_mean"), check(read_vector(t, "x_scale"), k, "x_scale"));
    i.u_min = read_vector(t, "u_min");
    i.u_max = read_vector(t, "u_max");
    check(i.u_min, d, "u_min");
    check(i.u_max, d, "u_max");
    h5::Group h = g.open_group("history");
    i.train_loss = read_vector(h, "train_loss");
    i.validation_loss = read_vector(h, "validation_loss");
    i.learning_rate = read_vector(h, "learning_rate");
    return m;
  } catch (const h5::Error& e) {
    throw ModelError(fmt::format("{}: malformed /model group: {}", path, e.what()));
  } catch (const std::invalid_argument& e) {
    throw ModelError(fmt::format("{}: malformed /model group: {}", path, e.what()));
  }
}

StoredModel read_model(const std::string& path) {
  h5::File file = [&] {
    try {
      return h5::File::open(path);
    } catch (const h5::Error& e) {
      throw ModelError(e.what());
    }
  }();
  return read_model(file);
}

}  // namespace fsbi
