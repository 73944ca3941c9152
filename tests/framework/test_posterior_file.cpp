// Tests of posterior samples as netCDF-4 / ArviZ groups (framework/src/posterior_file.*):
// exact round trips through read_posterior, the netCDF-4 layout rules (dimension scales, all axes
// attached, unique _Netcdf4Dimid, creation order, _NCProperties, netCDF types), and independent
// readers: xarray + h5netcdf (Debian's /usr/bin/python3) and ncdump (Debian netcdf-bin).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <limits>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fsbi/version.hpp"
#include "h5/h5.hpp"
#include "posterior_file.hpp"
#include "test_support.hpp"

namespace fsbi {
namespace {

using fsbi::test::TempDir;
using testing::ElementsAre;
using testing::HasSubstr;
using testing::Not;

constexpr int kChains = 3;
constexpr int kDraws = 7;

// Values the Python checks recompute: every one is exact in binary or computed by the same IEEE
// operation on both sides.
double theta_value(int c, int dr, int p) { return c + 0.125 * dr - 2.5 * p; }
double lp_value(int c, int dr) { return -(10.0 * c + dr) - 0.5; }
double acceptance_value(int dr) { return 0.5 + 0.0625 * (dr % 4); }
std::int8_t diverging_value(int c, int dr) { return (c + dr) % 5 == 0 ? 1 : 0; }
double x_value(int i, int j) { return 10.0 * i + j + 0.5; }

PosteriorSamples example() {
  PosteriorSamples s;
  s.parameter_names = {"alpha", "β"};
  s.chains = kChains;
  s.draws = kDraws;
  std::vector<double> lp, acc;
  for (int c = 0; c < kChains; ++c)
    for (int dr = 0; dr < kDraws; ++dr) {
      for (int p = 0; p < 2; ++p) s.theta.push_back(theta_value(c, dr, p));
      lp.push_back(lp_value(c, dr));
      acc.push_back(acceptance_value(dr));
      s.diverging.push_back(diverging_value(c, dr));
    }
  s.stats = {{"lp", lp}, {"acceptance_rate", acc}};
  s.data_names = {"x0", "x1", "x2"};
  s.observations.resize(2, 3);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) s.observations(i, j) = x_value(i, j);
  s.attributes = {{"simulator_name", "two_moons"}, {"model", "model.h5"}, {"sampler", "nuts"}};
  s.rhat = {1.001, 1.02};
  s.ess = {350.5, 410.25};
  return s;
}

void expect_same(const PosteriorSamples& a, const PosteriorSamples& b) {
  EXPECT_EQ(a.parameter_names, b.parameter_names);
  EXPECT_EQ(a.chains, b.chains);
  EXPECT_EQ(a.draws, b.draws);
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.stats, b.stats);
  EXPECT_EQ(a.diverging, b.diverging);
  EXPECT_EQ(a.data_names, b.data_names);
  ASSERT_EQ(a.observations.rows(), b.observations.rows());
  ASSERT_EQ(a.observations.cols(), b.observations.cols());
  EXPECT_TRUE((a.observations.array() == b.observations.array()).all());
  EXPECT_EQ(a.attributes, b.attributes);
  EXPECT_EQ(a.rhat, b.rhat);
  EXPECT_EQ(a.ess, b.ess);
}

void write_file(const std::string& path, const PosteriorSamples& s) {
  h5::File f = h5::File::create(path);
  write_posterior(f, s);
  f.close();
}

PosteriorSamples read_file(const std::string& path) {
  h5::File f = h5::File::open(path);
  return read_posterior(f);
}

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

// A /model-like group written before the posterior: datasets without dimension scales (float32,
// 2-D float64, fixed-length strings), a nested group and numeric array attributes.
void write_model_like(h5::File& f) {
  h5::Group m = f.create_group("model");
  m.set_attribute("hidden", std::vector<std::int64_t>{64, 64});
  m.set_attribute("seed", std::uint64_t{7});
  m.set_attribute("model_kind", "vector");
  std::vector<float> params(37, 0.25f);
  h5::Dataset p = m.create_dataset("network_parameters", h5::DType::f32, {params.size()});
  p.write_all(std::span<const float>(params));
  m.create_dataset("weights", h5::DType::f64, {4, 5})
      .write_rows(0, 4, std::vector<double>(20, -1.5));
  h5::Group t = m.create_group("transform");
  t.create_dataset("low", h5::DType::f64, {2}).write_rows(0, 2, std::vector<double>{-1, 0});
  t.create_string_dataset("message", 2, 16).write_string_rows(0, std::vector<std::string>{"a", "b"});
}

// ---- Round trips --------------------------------------------------------------------------------

TEST(PosteriorFile, RoundTripIsExact) {
  TempDir dir;
  const std::string path = dir.file("posterior.h5");
  const PosteriorSamples s = example();
  write_file(path, s);
  expect_same(read_file(path), s);
}

TEST(PosteriorFile, RoundTripWithoutOptionalParts) {
  TempDir dir;
  const std::string path = dir.file("minimal.h5");
  PosteriorSamples s = example();
  s.stats.clear();
  s.diverging.clear();
  s.attributes.clear();
  s.rhat.clear();
  s.ess.clear();
  s.observations = s.observations.topRows(1).eval();
  write_file(path, s);
  expect_same(read_file(path), s);
}

TEST(PosteriorFile, ArbitraryValuesRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("values.h5");
  PosteriorSamples s = example();
  for (std::size_t i = 0; i < s.theta.size(); ++i) s.theta[i] = 1.0 / (3.0 + static_cast<double>(i));
  s.theta[1] = -0.0;
  s.theta[2] = 1e-310;  // subnormal
  s.stats[0].second[3] = std::numeric_limits<double>::infinity();
  write_file(path, s);
  const PosteriorSamples r = read_file(path);
  EXPECT_EQ(r.theta, s.theta);
  EXPECT_TRUE(std::signbit(r.theta[1]));
  EXPECT_EQ(r.stats, s.stats);
}

TEST(PosteriorFile, ProvenanceOnPosteriorAndRoot) {
  TempDir dir;
  const std::string path = dir.file("provenance.h5");
  write_file(path, example());
  h5::File f = h5::File::open(path);
  EXPECT_EQ(f.attribute_string("simulator_name"), "two_moons");
  EXPECT_EQ(f.attribute_string("fsbi_format"), "fsbi");
  EXPECT_EQ(f.attribute_string("fsbi_version"), version_string);
  EXPECT_EQ(f.attribute_string("_NCProperties"),
            std::string("version=2,fsbi=") + version_string + ",hdf5=" + h5::hdf5_version());
  const h5::Group post = f.open_group("posterior");
  EXPECT_EQ(post.attribute_string("sampler"), "nuts");
  EXPECT_EQ(post.attribute_int("fsbi_posterior_format_version"), 1);
  EXPECT_THAT(post.attribute_doubles("rhat"), ElementsAre(1.001, 1.02));
  EXPECT_THAT(post.attribute_doubles("ess"), ElementsAre(350.5, 410.25));
}

// ---- netCDF-4 layout (checked with the HDF5 C API) ----------------------------------------------

unsigned link_order_flags(hid_t group) {
  const hid_t gcpl = H5Gget_create_plist(group);
  unsigned flags = 0;
  H5Pget_link_creation_order(gcpl, &flags);
  H5Pclose(gcpl);
  return flags;
}

unsigned attr_order_flags_of_group(hid_t group) {
  const hid_t gcpl = H5Gget_create_plist(group);
  unsigned flags = 0;
  H5Pget_attr_creation_order(gcpl, &flags);
  H5Pclose(gcpl);
  return flags;
}

TEST(PosteriorFile, LayoutFollowsNetcdf4Rules) {
  TempDir dir;
  const std::string path = dir.file("layout.h5");
  write_file(path, example());
  h5::File f = h5::File::open(path);
  EXPECT_THAT(f.children(), ElementsAre("posterior", "sample_stats", "observed_data"));
  constexpr unsigned both = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
  {
    const hid_t root = H5Gopen2(f.id(), "/", H5P_DEFAULT);
    EXPECT_EQ(link_order_flags(root), both);
    EXPECT_EQ(attr_order_flags_of_group(root), both);
    H5Gclose(root);
  }
  struct Expected {
    std::string group;
    std::vector<std::string> dims;
    std::vector<std::uint64_t> lengths;
    std::vector<std::pair<std::string, h5::DType>> variables;
  };
  const std::vector<Expected> groups = {
      {"posterior", {"chain", "draw", "parameter"}, {3, 7, 2}, {{"theta", h5::DType::f64}}},
      {"sample_stats",
       {"chain", "draw"},
       {3, 7},
       {{"lp", h5::DType::f64}, {"acceptance_rate", h5::DType::f64}, {"diverging", h5::DType::i8}}},
      {"observed_data", {"trial", "data"}, {2, 3}, {{"x", h5::DType::f64}}},
  };
  std::set<std::int64_t> dimids;
  int num_scales = 0;
  for (const auto& e : groups) {
    SCOPED_TRACE(e.group);
    const h5::Group g = f.open_group(e.group);
    EXPECT_EQ(link_order_flags(g.id()), both);
    EXPECT_EQ(attr_order_flags_of_group(g.id()), both);
    std::vector<std::string> expected_children = e.dims;
    for (const auto& [name, type] : e.variables) expected_children.push_back(name);
    EXPECT_EQ(g.children(), expected_children);
    for (std::size_t k = 0; k < e.dims.size(); ++k) {
      const h5::Dataset scale = g.open_dataset(e.dims[k]);
      EXPECT_TRUE(scale.is_dimension_scale()) << e.dims[k];
      EXPECT_EQ(scale.shape(), std::vector<std::uint64_t>{e.lengths[k]});
      EXPECT_EQ(scale.attribute_string("NAME"), e.dims[k]);
      dimids.insert(scale.attribute_int("_Netcdf4Dimid"));
      ++num_scales;
      if (e.dims[k] == "parameter" || e.dims[k] == "data") {
        EXPECT_FALSE(scale.read_all_strings().empty());
      } else {
        std::vector<std::int64_t> iota(e.lengths[k]);
        for (std::size_t i = 0; i < iota.size(); ++i) iota[i] = static_cast<std::int64_t>(i);
        EXPECT_EQ(scale.dtype(), h5::DType::i64);
        EXPECT_EQ(scale.read_all_int(), iota);
      }
      // _Netcdf4Dimid is a scalar int32.
      const hid_t a = H5Aopen(scale.id(), "_Netcdf4Dimid", H5P_DEFAULT);
      const hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
      EXPECT_TRUE(H5Tequal(t, H5T_STD_I32LE) > 0);
      EXPECT_EQ(H5Sget_simple_extent_type(sp), H5S_SCALAR);
      H5Sclose(sp);
      H5Tclose(t);
      H5Aclose(a);
    }
    for (const auto& [name, type] : e.variables) {
      const h5::Dataset v = g.open_dataset(name);
      EXPECT_EQ(v.dtype(), type) << name;
      EXPECT_FALSE(v.is_dimension_scale());
      EXPECT_EQ(v.shape(), e.lengths);
      for (unsigned axis = 0; axis < e.dims.size(); ++axis)
        EXPECT_THAT(v.attached_scales(axis), ElementsAre("/" + e.group + "/" + e.dims[axis]))
            << name << " axis " << axis;
      const hid_t dcpl = H5Dget_create_plist(v.id());
      unsigned flags = 0;
      H5Pget_attr_creation_order(dcpl, &flags);
      H5Pclose(dcpl);
      EXPECT_EQ(flags, both) << name;
    }
  }
  EXPECT_EQ(num_scales, 7);
  EXPECT_EQ(dimids.size(), 7u) << "_Netcdf4Dimid must be unique across the file";
}

TEST(PosteriorFile, DimensionIdsFollowExistingOnes) {
  TempDir dir;
  const std::string path = dir.file("ids.h5");
  {
    h5::File f = h5::File::create(path);
    h5::Group other = f.create_group("prior");
    h5::Dataset s = other.create_dataset("sample", h5::DType::i64, {4});
    s.write_all(std::span<const std::int64_t>(std::vector<std::int64_t>{0, 1, 2, 3}));
    s.make_dimension_scale("sample");
    s.set_attribute("_Netcdf4Dimid", std::int32_t{41});
    write_posterior(f, example());
    f.close();
  }
  h5::File f = h5::File::open(path);
  EXPECT_EQ(f.open_group("posterior").open_dataset("chain").attribute_int("_Netcdf4Dimid"), 42);
  EXPECT_EQ(f.open_group("observed_data").open_dataset("data").attribute_int("_Netcdf4Dimid"), 48);
}

// ---- Errors -------------------------------------------------------------------------------------

TEST(PosteriorFile, InvalidSamplesAreRejectedBeforeWriting) {
  TempDir dir;
  const std::string path = dir.file("bad.h5");
  auto rejects = [&](PosteriorSamples s) {
    h5::File f = h5::File::create(path);
    std::string msg = error_of<std::invalid_argument>([&] { write_posterior(f, s); });
    EXPECT_FALSE(f.exists("posterior")) << "nothing written for: " << msg;
    return msg;
  };
  {
    auto s = example();
    s.theta.pop_back();
    EXPECT_THAT(rejects(s), HasSubstr("theta has 41 values, expected chains x draws x d = 3 x 7 x 2 = 42"));
  }
  {
    auto s = example();
    s.stats[1].second.resize(5);
    EXPECT_THAT(rejects(s), HasSubstr("statistic 'acceptance_rate' has 5 values"));
  }
  {
    auto s = example();
    s.stats.push_back({"diverging", std::vector<double>(21)});
    EXPECT_THAT(rejects(s), HasSubstr("'diverging' is used twice or reserved"));
  }
  {
    auto s = example();
    s.parameter_names = {"a", "a"};
    EXPECT_THAT(rejects(s), HasSubstr("parameter names contain 'a' twice"));
  }
  {
    auto s = example();
    s.data_names.pop_back();
    EXPECT_THAT(rejects(s), HasSubstr("observations have 3 columns, expected 2"));
  }
  {
    auto s = example();
    s.diverging.resize(3);
    EXPECT_THAT(rejects(s), HasSubstr("diverging has 3 values"));
  }
  {
    auto s = example();
    s.rhat.push_back(1.0);
    EXPECT_THAT(rejects(s), HasSubstr("rhat has 3 values, expected 2"));
  }
  {
    auto s = example();
    s.attributes.push_back({"_FillValue", "x"});
    EXPECT_THAT(rejects(s), HasSubstr("attribute name '_FillValue' is reserved"));
  }
  {
    auto s = example();
    s.chains = 0;
    s.theta.clear();
    s.stats.clear();
    s.diverging.clear();
    EXPECT_THAT(rejects(s), HasSubstr("chains and draws must be positive"));
  }
  {
    auto s = example();
    s.stats[0].first = "a/b";
    EXPECT_THAT(rejects(s), HasSubstr("'a/b' is not a valid netCDF/HDF5 name"));
  }
}

TEST(PosteriorFile, RefusesSecondWriteAndRootDatasets) {
  TempDir dir;
  {
    h5::File f = h5::File::create(dir.file("twice.h5"));
    write_posterior(f, example());
    EXPECT_THAT(error_of<std::invalid_argument>([&] { write_posterior(f, example()); }),
                HasSubstr("twice.h5 already holds /posterior"));
  }
  {
    h5::File f = h5::File::create(dir.file("root.h5"));
    f.create_dataset("stray", h5::DType::f64, {2});
    EXPECT_THAT(error_of<std::invalid_argument>([&] { write_posterior(f, example()); }),
                HasSubstr("the root group holds dataset 'stray'"));
    EXPECT_FALSE(f.exists("posterior"));
  }
}

// /posterior_predictive: replicates k × m as x(chain = 1, draw = m, data = k), dimension ids after
// the posterior groups', the values in C order; a second write and mismatched names refused.
TEST(PosteriorFile, PosteriorPredictiveBesideThePosterior) {
  TempDir dir;
  const std::string path = dir.file("ppc.h5");
  Eigen::MatrixXd rep(3, 4);  // k = 3 data values, m = 4 replicates: value = 10·draw + data
  for (int j = 0; j < 4; ++j)
    for (int i = 0; i < 3; ++i) rep(i, j) = 10.0 * j + i;
  {
    h5::File f = h5::File::create(path);
    write_posterior(f, example());
    EXPECT_THAT(error_of<std::invalid_argument>([&] { write_posterior_predictive(f, rep, {"x0", "x1"}); }),
                HasSubstr("2 data names for 3 data values"));
    EXPECT_FALSE(f.exists("posterior_predictive"));
    write_posterior_predictive(f, rep, {"x0", "x1", "x2"});
    EXPECT_THAT(error_of<std::invalid_argument>([&] { write_posterior_predictive(f, rep, {"x0", "x1", "x2"}); }),
                HasSubstr("ppc.h5 already holds /posterior_predictive"));
    f.close();
  }
  h5::File f = h5::File::open(path);
  const h5::Group g = f.open_group("posterior_predictive");
  const h5::Dataset x = g.open_dataset("x");
  EXPECT_EQ(x.shape(), (std::vector<std::uint64_t>{1, 4, 3}));
  EXPECT_EQ(x.read_all_double(), (std::vector<double>{0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32}));
  const char* dims[] = {"chain", "draw", "data"};
  for (unsigned axis = 0; axis < 3; ++axis)
    EXPECT_EQ(x.attached_scales(axis), std::vector<std::string>{std::string("/posterior_predictive/") + dims[axis]});
  // The posterior groups use ids 0–6 (chain, draw, parameter; chain, draw; trial, data).
  EXPECT_EQ(g.open_dataset("chain").attribute_int("_Netcdf4Dimid"), 7);
  EXPECT_EQ(read_file(path).draws, kDraws);  // the posterior groups still read back
}

TEST(PosteriorFile, ReadingAFileWithoutPosteriorNamesTheFile) {
  TempDir dir;
  const std::string path = dir.file("model_only.h5");
  {
    h5::File f = h5::File::create(path);
    write_model_like(f);
  }
  EXPECT_THAT(error_of<std::runtime_error>([&] { read_file(path); }),
              HasSubstr(path + ": no /posterior group: not a file of posterior samples"));
}

TEST(PosteriorFile, ReadingMalformedGroupsNamesTheProblem) {
  TempDir dir;
  // theta present but its axes not attached to the dimension scales (phony dimensions).
  const std::string unattached = dir.file("unattached.h5");
  {
    h5::File f = h5::File::create(unattached);
    write_posterior(f, example());
    h5::Group post = f.open_group("posterior");
    H5Ldelete(post.id(), "theta", H5P_DEFAULT);
    post.create_array("theta", h5::DType::f64, {3, 7, 2})
        .write_all(std::span<const double>(example().theta));
  }
  EXPECT_THAT(error_of<std::runtime_error>([&] { read_file(unattached); }),
              HasSubstr(unattached + ": malformed posterior samples: axis 0 of /posterior/theta is "
                                     "attached to [], expected dimension /posterior/chain"));
  // A statistic with the wrong shape.
  const std::string shape = dir.file("shape.h5");
  {
    h5::File f = h5::File::create(shape);
    write_posterior(f, example());
    f.open_group("sample_stats").create_array("energy", h5::DType::f64, {3, 6});
  }
  EXPECT_THAT(error_of<std::runtime_error>([&] { read_file(shape); }),
              HasSubstr("/sample_stats/energy has shape (3, 6), expected (3, 7) for dimensions "
                        "(chain, draw)"));
  // A dimension that is not a dimension scale.
  const std::string noscale = dir.file("noscale.h5");
  {
    h5::File f = h5::File::create(noscale);
    write_posterior(f, example());
    h5::Group obs = f.open_group("observed_data");
    H5Ldelete(obs.id(), "trial", H5P_DEFAULT);
    obs.create_dataset("trial", h5::DType::i64, {2});
  }
  EXPECT_THAT(error_of<std::runtime_error>([&] { read_file(noscale); }),
              HasSubstr("/observed_data/trial is not a dimension scale"));
}

// ---- The h5 layer additions this file relies on --------------------------------------------------

TEST(PosteriorFile, H5LayerArraysScalesAndFixedStrings) {
  TempDir dir;
  const std::string path = dir.file("layer.h5");
  h5::File f = h5::File::create(path);
  h5::Group g = f.create_group("g");
  EXPECT_TRUE(f.is_group("g"));
  EXPECT_FALSE(f.is_dataset("g"));
  EXPECT_FALSE(f.is_group("missing/deeper"));
  h5::Dataset a = g.create_array("cube", h5::DType::f32, {2, 3, 4});
  EXPECT_TRUE(f.is_dataset("g/cube"));
  EXPECT_THAT(error_of<h5::Error>([&] { a.write_all(std::span<const float>(std::vector<float>(23))); }),
              HasSubstr("g/cube: write_all: dataset has 24 elements, got 23 values"));
  std::vector<float> values(24);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i);
  a.write_all(std::span<const float>(values));
  EXPECT_EQ(a.shape(), (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(a.dtype(), h5::DType::f32);
  EXPECT_EQ(a.read_all_double()[23], 11.5);
  EXPECT_THAT(error_of<h5::Error>([&] { g.create_array("none", h5::DType::f64, {}); }),
              HasSubstr("arrays have 1 to 32 dimensions, got 0"));
  h5::Dataset s = g.create_array("k", h5::DType::i64, {4});
  s.make_dimension_scale("k");
  EXPECT_TRUE(s.is_dimension_scale());
  EXPECT_FALSE(a.is_dimension_scale());
  EXPECT_TRUE(a.attached_scales(2).empty());
  a.attach_scale(s, 2);
  EXPECT_THAT(a.attached_scales(2), ElementsAre("/g/k"));
  EXPECT_THAT(error_of<h5::Error>([&] { a.attach_scale(s, 3); }),
              HasSubstr("attach_scale: axis 3 of a 3-dimensional dataset"));
  f.set_fixed_string_attribute("fixed", "abc=1,def=2");
  EXPECT_EQ(f.attribute_string("fixed"), "abc=1,def=2");
  f.set_fixed_string_attribute("fixed", "");  // replaces; empty is one NUL byte
  EXPECT_EQ(f.attribute_string("fixed"), "");
}

// ---- Independent readers ------------------------------------------------------------------------

bool python_has(const std::string& module) {
  try {
    return fsbi::test::run({"/usr/bin/python3", "-c", "import " + module}).exit_code == 0;
  } catch (const std::exception&) {
    return false;
  }
}

bool have_ncdump() { return std::filesystem::exists("/usr/bin/ncdump"); }

fsbi::test::CommandResult python(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/python3", "-c", script};
  argv.insert(argv.end(), args.begin(), args.end());
  return fsbi::test::run(argv, {"PYTHONIOENCODING=utf-8"});
}

constexpr const char* xarray_script = R"PY(
import sys
import numpy as np
import xarray as xr
path, C, D = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = np.arange(C)[:, None]
d = np.arange(D)[None, :]
phony = []

post = xr.open_dataset(path, engine="h5netcdf", group="posterior")
phony += [n for n in list(post.dims) + list(post.variables) if "phony" in str(n)]
print("posterior.dims", sorted(post.dims.items()))
print("theta.dims", post["theta"].dims, post["theta"].dtype)
print("parameter", [str(v) for v in post["parameter"].values])
print("chain", post["chain"].values.tolist(), post["chain"].dtype)
print("draw", post["draw"].values.tolist())
expected = c[:, :, None] + 0.125 * d[:, :, None] - 2.5 * np.arange(2)[None, None, :]
print("theta.equal", np.array_equal(post["theta"].values, expected))
print("theta.sel", float(post["theta"].sel(chain=2, draw=3, parameter="β")))
print("attrs", post.attrs["simulator_name"], post.attrs["sampler"], post.attrs["rhat"].tolist(),
      post.attrs["ess"].tolist())

ss = xr.open_dataset(path, engine="h5netcdf", group="sample_stats")
phony += [n for n in list(ss.dims) + list(ss.variables) if "phony" in str(n)]
print("sample_stats.dims", sorted(ss.dims.items()))
print("sample_stats.vars", sorted(ss.data_vars))
print("lp.dims", ss["lp"].dims, ss["lp"].dtype)
print("lp.equal", np.array_equal(ss["lp"].values, -(10.0 * c + d) - 0.5))
print("acceptance_rate.equal", np.array_equal(ss["acceptance_rate"].values, 0.5 + 0.0625 * (d % 4) + 0 * c))
print("diverging", ss["diverging"].dims, ss["diverging"].dtype,
      np.array_equal(ss["diverging"].values, ((c + d) % 5 == 0).astype(np.int8)))

obs = xr.open_dataset(path, engine="h5netcdf", group="observed_data")
phony += [n for n in list(obs.dims) + list(obs.variables) if "phony" in str(n)]
print("observed_data.dims", sorted(obs.dims.items()))
print("x.dims", obs["x"].dims, obs["x"].dtype)
print("data", [str(v) for v in obs["data"].values])
print("trial", obs["trial"].values.tolist())
print("x.equal", np.array_equal(obs["x"].values, 10.0 * np.arange(2)[:, None] + np.arange(3)[None, :] + 0.5))

# h5netcdf directly, with its default phony_dims=None (it raises on a variable without scales).
import h5netcdf
with h5netcdf.File(path, "r") as f:
    for g in ["posterior", "sample_stats", "observed_data"]:
        for name, v in f[g].variables.items():
            print("h5netcdf", g, name, v.dimensions)
print("phony", phony)
)PY";

TEST(PosteriorFilePython, XarrayOpensEveryGroupWithNamedDims) {
  if (!python_has("xarray, h5netcdf"))
    GTEST_SKIP() << "/usr/bin/python3 cannot import xarray and h5netcdf (Debian: python3-xarray, "
                    "python3-h5netcdf)";
  TempDir dir;
  const std::string path = dir.file("posterior.h5");
  write_file(path, example());
  const auto r = python(xarray_script, {path, std::to_string(kChains), std::to_string(kDraws)});
  std::cout << r.out;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string& o = r.out;
  EXPECT_THAT(o, HasSubstr("posterior.dims [('chain', 3), ('draw', 7), ('parameter', 2)]\n"));
  EXPECT_THAT(o, HasSubstr("theta.dims ('chain', 'draw', 'parameter') float64\n"));
  EXPECT_THAT(o, HasSubstr("parameter ['alpha', 'β']\n"));
  EXPECT_THAT(o, HasSubstr("chain [0, 1, 2] int64\n"));
  EXPECT_THAT(o, HasSubstr("draw [0, 1, 2, 3, 4, 5, 6]\n"));
  EXPECT_THAT(o, HasSubstr("theta.equal True\n"));
  EXPECT_EQ(theta_value(2, 3, 1), -0.125);
  EXPECT_THAT(o, HasSubstr("theta.sel -0.125\n"));
  EXPECT_THAT(o, HasSubstr("attrs two_moons nuts [1.001, 1.02] [350.5, 410.25]\n"));
  EXPECT_THAT(o, HasSubstr("sample_stats.dims [('chain', 3), ('draw', 7)]\n"));
  EXPECT_THAT(o, HasSubstr("sample_stats.vars ['acceptance_rate', 'diverging', 'lp']\n"));
  EXPECT_THAT(o, HasSubstr("lp.dims ('chain', 'draw') float64\n"));
  EXPECT_THAT(o, HasSubstr("lp.equal True\n"));
  EXPECT_THAT(o, HasSubstr("acceptance_rate.equal True\n"));
  EXPECT_THAT(o, HasSubstr("diverging ('chain', 'draw') int8 True\n"));
  EXPECT_THAT(o, HasSubstr("observed_data.dims [('data', 3), ('trial', 2)]\n"));
  EXPECT_THAT(o, HasSubstr("x.dims ('trial', 'data') float64\n"));
  EXPECT_THAT(o, HasSubstr("data ['x0', 'x1', 'x2']\n"));
  EXPECT_THAT(o, HasSubstr("trial [0, 1]\n"));
  EXPECT_THAT(o, HasSubstr("x.equal True\n"));
  EXPECT_THAT(o, HasSubstr("h5netcdf posterior theta ('chain', 'draw', 'parameter')\n"));
  EXPECT_THAT(o, HasSubstr("h5netcdf sample_stats diverging ('chain', 'draw')\n"));
  EXPECT_THAT(o, HasSubstr("h5netcdf observed_data x ('trial', 'data')\n"));
  EXPECT_THAT(o, HasSubstr("phony []\n"));
  EXPECT_THAT(o, Not(HasSubstr("phony_dim")));
}

TEST(PosteriorFilePython, XarrayOpensPosteriorBesideAModelGroup) {
  if (!python_has("xarray, h5netcdf"))
    GTEST_SKIP() << "/usr/bin/python3 cannot import xarray and h5netcdf (Debian: python3-xarray, "
                    "python3-h5netcdf)";
  TempDir dir;
  const std::string path = dir.file("model_and_posterior.h5");
  {
    h5::File f = h5::File::create(path);
    write_model_like(f);
    write_posterior(f, example());
    f.close();
  }
  expect_same(read_file(path), example());
  const auto r = python(xarray_script, {path, std::to_string(kChains), std::to_string(kDraws)});
  std::cout << r.out;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("posterior.dims [('chain', 3), ('draw', 7), ('parameter', 2)]\n"));
  EXPECT_THAT(r.out, HasSubstr("theta.equal True\n"));
  EXPECT_THAT(r.out, HasSubstr("diverging ('chain', 'draw') int8 True\n"));
  EXPECT_THAT(r.out, HasSubstr("x.equal True\n"));
  EXPECT_THAT(r.out, HasSubstr("phony []\n"));
}

TEST(PosteriorFilePython, ArviZReadsTheGroups) {
  if (!python_has("arviz, xarray, h5netcdf"))
    GTEST_SKIP() << "/usr/bin/python3 cannot import arviz (Debian 12 has no python3-arviz package)";
  TempDir dir;
  const std::string path = dir.file("posterior.h5");
  write_file(path, example());
  const auto r = python(R"PY(
import sys
import arviz as az
import xarray as xr
groups = {g: xr.open_dataset(sys.argv[1], engine="h5netcdf", group=g)
          for g in ["posterior", "sample_stats", "observed_data"]}
idata = az.InferenceData(**groups)
print("groups", sorted(idata.groups()))
print("chains", idata.posterior.sizes["chain"], "draws", idata.posterior.sizes["draw"])
print("divergences", int(idata.sample_stats["diverging"].sum()))
print(az.summary(idata, var_names=["theta"], kind="stats"))
)PY",
                        {path});
  std::cout << r.out;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("groups ['observed_data', 'posterior', 'sample_stats']\n"));
  EXPECT_THAT(r.out, HasSubstr("chains 3 draws 7\n"));
  EXPECT_THAT(r.out, HasSubstr("theta[alpha]"));
}

TEST(PosteriorFileNcdump, NcdumpReadsTheHeaderAndData) {
  if (!have_ncdump()) GTEST_SKIP() << "/usr/bin/ncdump missing (Debian: netcdf-bin)";
  TempDir dir;
  const std::string path = dir.file("posterior.h5");
  write_file(path, example());
  const auto h = fsbi::test::run({"/usr/bin/ncdump", "-s", "-h", path});
  std::cout << h.out;
  ASSERT_EQ(h.exit_code, 0) << h.err;
  const std::string& o = h.out;
  EXPECT_THAT(o, HasSubstr(":_NCProperties = \"version=2,fsbi=" + std::string(version_string) +
                           ",hdf5=" + h5::hdf5_version() + "\""));
  EXPECT_THAT(o, HasSubstr("group: posterior {"));
  EXPECT_THAT(o, HasSubstr("group: sample_stats {"));
  EXPECT_THAT(o, HasSubstr("group: observed_data {"));
  EXPECT_THAT(o, HasSubstr("chain = 3 ;"));
  EXPECT_THAT(o, HasSubstr("draw = 7 ;"));
  EXPECT_THAT(o, HasSubstr("parameter = 2 ;"));
  EXPECT_THAT(o, HasSubstr("trial = 2 ;"));
  EXPECT_THAT(o, HasSubstr("data = 3 ;"));
  EXPECT_THAT(o, HasSubstr("int64 chain(chain) ;"));
  EXPECT_THAT(o, HasSubstr("string parameter(parameter) ;"));
  EXPECT_THAT(o, HasSubstr("double theta(chain, draw, parameter) ;"));
  EXPECT_THAT(o, HasSubstr("double lp(chain, draw) ;"));
  EXPECT_THAT(o, HasSubstr("byte diverging(chain, draw) ;"));
  EXPECT_THAT(o, HasSubstr("double x(trial, data) ;"));
  EXPECT_THAT(o, HasSubstr(":sampler = \"nuts\" ;"));
  EXPECT_THAT(o, Not(HasSubstr("phony_dim")));

  const auto full = fsbi::test::run({"/usr/bin/ncdump", path});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  EXPECT_THAT(full.out, HasSubstr("parameter = \"alpha\", \"β\" ;"));
  EXPECT_THAT(full.out, HasSubstr("data = \"x0\", \"x1\", \"x2\" ;"));
  EXPECT_THAT(full.out, HasSubstr("x =\n  0.5, 1.5, 2.5,\n  10.5, 11.5, 12.5 ;"));
  EXPECT_THAT(full.out, HasSubstr("diverging =\n  1, 0, 0, 0, 0, 1, 0,"));
}

TEST(PosteriorFileNcdump, NcdumpReadsAFileWithAModelGroup) {
  if (!have_ncdump()) GTEST_SKIP() << "/usr/bin/ncdump missing (Debian: netcdf-bin)";
  TempDir dir;
  const std::string path = dir.file("model_and_posterior.h5");
  {
    h5::File f = h5::File::create(path);
    write_model_like(f);
    write_posterior(f, example());
  }
  const auto r = fsbi::test::run({"/usr/bin/ncdump", "-h", path});
  std::cout << r.out;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("group: model {"));
  EXPECT_THAT(r.out, HasSubstr("double theta(chain, draw, parameter) ;"));
  EXPECT_THAT(r.out, HasSubstr("byte diverging(chain, draw) ;"));
  EXPECT_THAT(r.out, HasSubstr("double x(trial, data) ;"));
  // The model group's datasets have no scales: ncdump names their dimensions phony_dim_N, but
  // only there.
  const auto posterior_at = r.out.find("group: posterior {");
  ASSERT_NE(posterior_at, std::string::npos);
  EXPECT_THAT(r.out.substr(posterior_at), Not(HasSubstr("phony_dim")));
}

}  // namespace
}  // namespace fsbi
