// Tests of the RAII layer over the HDF5 C API (framework/src/h5): round trips of every type and
// attribute kind, chunked/extendible datasets, the crash-consistency contract the simulation
// engine relies on (kill -9 mid-run), byte-identical output, error messages, and interop with
// h5py as an independent reader and writer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "h5/h5.hpp"
#include "test_support.hpp"

namespace fsbi::h5 {
namespace {

using fsbi::test::TempDir;
using testing::ElementsAre;
using testing::HasSubstr;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs f, expects it to throw Error, returns the message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected fsbi::h5::Error";
  return {};
}

TEST(H5Library, VersionIsDebians110) {
  EXPECT_EQ(hdf5_version().rfind("1.10.", 0), 0u) << hdf5_version();
}

// ---- Datasets: every dtype and shape ----------------------------------------------------------

TEST(H5Dataset, RoundTripsEveryDtypeAndShape) {
  TempDir dir;
  const std::string path = dir.file("types.h5");
  const std::vector<double> f64{
      1.0 / 3.0, -0.0, 1e300, -2.5e-310, std::numeric_limits<double>::infinity(), 42.0};
  const std::vector<double> f32_exact{0.5, -1.25, 3.0, 1024.0, -0.0078125, 7.0};
  const std::vector<std::int64_t> i64{
      std::numeric_limits<std::int64_t>::min(), -1, 0, 1, (std::int64_t{1} << 53) + 1,
      std::numeric_limits<std::int64_t>::max()};
  const std::vector<std::int32_t> i32{std::numeric_limits<std::int32_t>::min(), -7, 0, 7, 65536,
                                      std::numeric_limits<std::int32_t>::max()};
  const std::vector<std::int8_t> i8{-128, -1, 0, 1, 100, 127};
  const std::vector<std::uint64_t> u64{0,
                                       1,
                                       std::uint64_t{1} << 63,
                                       12345678901234567890ull,
                                       7,
                                       std::numeric_limits<std::uint64_t>::max()};
  for (const std::uint64_t chunk_rows : {std::uint64_t{0}, std::uint64_t{2}}) {
    SCOPED_TRACE("chunk_rows = " + std::to_string(chunk_rows));
    {
      File f = File::create(path);
      const DatasetOptions o{.chunk_rows = chunk_rows};
      f.create_dataset("f64_2d", DType::f64, {3, 2}, o)
          .write_rows(0, 3, std::span<const double>(f64));
      f.create_dataset("f64_1d", DType::f64, {6}, o).write_rows(0, 6, std::span<const double>(f64));
      f.create_dataset("f32_2d", DType::f32, {2, 3}, o)
          .write_rows(0, 2, std::span<const double>(f32_exact));
      f.create_dataset("i64_2d", DType::i64, {3, 2}, o)
          .write_rows(0, 3, std::span<const std::int64_t>(i64));
      f.create_dataset("i32_1d", DType::i32, {6}, o)
          .write_rows(0, 6, std::span<const std::int32_t>(i32));
      f.create_dataset("i8_2d", DType::i8, {6, 1}, o)
          .write_rows(0, 6, std::span<const std::int8_t>(i8));
      f.create_dataset("u64_1d", DType::u64, {6}, o)
          .write_rows(0, 6, std::span<const std::uint64_t>(u64));
      // Two blocks into one dataset: rows land where asked.
      auto blocks = f.create_dataset("blocks", DType::f64, {4, 3}, o);
      blocks.write_rows(2, 2, std::vector<double>{6, 7, 8, 9, 10, 11});
      blocks.write_rows(0, 2, std::vector<double>{0, 1, 2, 3, 4, 5});
      f.close();
    }
    const File f = File::open(path);
    auto ds = f.open_dataset("f64_2d");
    EXPECT_EQ(ds.dtype(), DType::f64);
    EXPECT_THAT(ds.shape(), ElementsAre(3u, 2u));
    std::vector<double> d(6);
    ds.read_rows(0, 3, d);
    for (std::size_t k = 0; k < 6; ++k) {
      EXPECT_EQ(d[k], f64[k]) << k;
      EXPECT_EQ(std::signbit(d[k]), std::signbit(f64[k])) << k;
    }
    EXPECT_EQ(ds.read_all_double(), f64);
    std::vector<double> middle(2);
    ds.read_rows(1, 1, middle);
    EXPECT_THAT(middle, ElementsAre(f64[2], f64[3]));

    auto ds1 = f.open_dataset("f64_1d");
    EXPECT_THAT(ds1.shape(), ElementsAre(6u));
    std::vector<double> tail(2);
    ds1.read_rows(4, 2, tail);
    EXPECT_THAT(tail, ElementsAre(f64[4], f64[5]));

    auto f32 = f.open_dataset("f32_2d");
    EXPECT_EQ(f32.dtype(), DType::f32);
    EXPECT_EQ(f32.read_all_double(), f32_exact);

    auto di64 = f.open_dataset("i64_2d");
    EXPECT_EQ(di64.dtype(), DType::i64);
    std::vector<std::int64_t> r64(6);
    di64.read_rows(0, 3, r64);
    EXPECT_EQ(r64, i64);
    EXPECT_EQ(di64.read_all_int(), i64);

    auto di32 = f.open_dataset("i32_1d");
    EXPECT_EQ(di32.dtype(), DType::i32);
    std::vector<std::int32_t> r32(6);
    di32.read_rows(0, 6, r32);
    EXPECT_EQ(r32, i32);
    EXPECT_EQ(di32.read_all_int(), std::vector<std::int64_t>(i32.begin(), i32.end()));

    auto di8 = f.open_dataset("i8_2d");
    EXPECT_EQ(di8.dtype(), DType::i8);
    std::vector<std::int8_t> r8(6);
    di8.read_rows(0, 6, r8);
    EXPECT_EQ(r8, i8);
    EXPECT_EQ(di8.read_all_double(), std::vector<double>(i8.begin(), i8.end()));

    auto du64 = f.open_dataset("u64_1d");
    EXPECT_EQ(du64.dtype(), DType::u64);
    std::vector<std::uint64_t> ru(6);
    du64.read_rows(0, 6, ru);
    EXPECT_EQ(ru, u64);

    EXPECT_EQ(f.open_dataset("blocks").read_all_double(),
              (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  }
}

TEST(H5Dataset, StoredTypesAreLittleEndianIeeeAndTwosComplement) {
  TempDir dir;
  File f = File::create(dir.file("t.h5"));
  auto check = [&](DType t, hid_t expected) {
    auto ds = f.create_dataset("d" + std::to_string(static_cast<int>(t)), t, {1});
    const hid_t type = H5Dget_type(ds.id());
    EXPECT_GT(H5Tequal(type, expected), 0) << static_cast<int>(t);
    H5Tclose(type);
  };
  check(DType::f64, H5T_IEEE_F64LE);
  check(DType::f32, H5T_IEEE_F32LE);
  check(DType::i64, H5T_STD_I64LE);
  check(DType::i32, H5T_STD_I32LE);
  check(DType::i8, H5T_STD_I8LE);
  check(DType::u64, H5T_STD_U64LE);
}

// ---- Attributes --------------------------------------------------------------------------------

TEST(H5Attributes, RoundTripEveryKindOnFileGroupAndDataset) {
  TempDir dir;
  const std::string path = dir.file("attrs.h5");
  const std::string unicode = "θ₁ – Gauß 🙂";
  {
    File f = File::create(path);
    auto g = f.create_group("simulations");
    auto ds = g.create_dataset("theta", DType::f64, {2, 2});
    for (Object* o : std::vector<Object*>{&f, &g, &ds}) {
      o->set_attribute("text", unicode);
      o->set_attribute("literal", "plain");
      o->set_attribute("empty", std::string_view{});
      o->set_attribute("pi", 3.141592653589793);
      o->set_attribute("i64", std::int64_t{-9007199254740993});
      o->set_attribute("u64", std::numeric_limits<std::uint64_t>::max());
      o->set_attribute("i32", std::int32_t{-5});
      o->set_attribute("doubles", std::vector<double>{0.1, -2.0, 1e-300});
      o->set_attribute("ints",
                       std::vector<std::int64_t>{3, -4, std::numeric_limits<std::int64_t>::min()});
      o->set_attribute("no_doubles", std::span<const double>{});
      o->set_attribute("names", std::vector<std::string>{"μ", "", "sigma"});
      o->set_attribute("no_names", std::vector<std::string>{});
    }
    f.close();
  }
  const File f = File::open(path);
  const auto g = f.open_group("simulations");
  const auto ds = g.open_dataset("theta");
  for (const Object* o : std::vector<const Object*>{&f, &g, &ds}) {
    SCOPED_TRACE(o->path());
    EXPECT_TRUE(o->has_attribute("text"));
    EXPECT_FALSE(o->has_attribute("txt"));
    EXPECT_EQ(o->attribute_string("text"), unicode);
    EXPECT_EQ(o->attribute_string("literal"), "plain");
    EXPECT_EQ(o->attribute_string("empty"), "");
    EXPECT_THAT(o->attribute_strings("text"), ElementsAre(unicode));  // a scalar is a list of one
    EXPECT_EQ(o->attribute_double("pi"), 3.141592653589793);
    EXPECT_EQ(o->attribute_int("i64"), -9007199254740993);
    EXPECT_EQ(o->attribute_uint("u64"), std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(o->attribute_int("i32"), -5);
    EXPECT_EQ(o->attribute_double("i32"), -5.0);
    EXPECT_THAT(o->attribute_doubles("doubles"), ElementsAre(0.1, -2.0, 1e-300));
    EXPECT_THAT(o->attribute_ints("ints"),
                ElementsAre(3, -4, std::numeric_limits<std::int64_t>::min()));
    EXPECT_TRUE(o->attribute_doubles("no_doubles").empty());
    EXPECT_THAT(o->attribute_strings("names"), ElementsAre("μ", "", "sigma"));
    EXPECT_TRUE(o->attribute_strings("no_names").empty());
    EXPECT_THAT(o->attribute_names(),
                ElementsAre("text", "literal", "empty", "pi", "i64", "u64", "i32", "doubles",
                            "ints", "no_doubles", "names", "no_names"));
  }
  // The path used in messages.
  EXPECT_EQ(f.path(), path + ":/");
  EXPECT_EQ(g.path(), path + ":/simulations");
  EXPECT_EQ(ds.path(), path + ":/simulations/theta");
}

TEST(H5Attributes, ReplacingChangesTypeAndShapeAndMovesToTheEnd) {
  TempDir dir;
  const std::string path = dir.file("replace.h5");
  {
    File f = File::create(path);
    f.set_attribute("a", "first");
    f.set_attribute("b", 1.5);
    f.set_attribute("a", std::vector<double>{1, 2, 3});        // string -> double array
    f.set_attribute("b", std::vector<std::string>{"x", "y"});  // double -> string list
    f.set_attribute("c", std::int64_t{7});
    f.set_attribute("c", "seven");          // int -> string
    f.set_attribute("c", std::int32_t{8});  // and back
    f.close();
  }
  const File f = File::open(path);
  EXPECT_THAT(f.attribute_doubles("a"), ElementsAre(1, 2, 3));
  EXPECT_THAT(f.attribute_strings("b"), ElementsAre("x", "y"));
  EXPECT_EQ(f.attribute_int("c"), 8);
  EXPECT_THAT(f.attribute_names(), ElementsAre("a", "b", "c"));
  // Creation order: the replaced attribute is a new attribute.
  File w = File::create(dir.file("order.h5"));
  w.set_attribute("first", 1.0);
  w.set_attribute("second", 2.0);
  w.set_attribute("first", 3.0);
  EXPECT_THAT(w.attribute_names(), ElementsAre("second", "first"));
}

TEST(H5Attributes, NumericReadersConvertOnlyExactValues) {
  TempDir dir;
  File f = File::create(dir.file("convert.h5"));
  f.set_attribute("three", 3.0);
  f.set_attribute("half", 2.5);
  f.set_attribute("minus_one", std::int64_t{-1});
  f.set_attribute("big_unsigned", std::numeric_limits<std::uint64_t>::max());
  f.set_attribute("two_53_plus_1", (std::int64_t{1} << 53) + 1);
  f.set_attribute("two_53", std::int64_t{1} << 53);
  f.set_attribute("huge", 1e30);
  f.set_attribute("nan", std::nan(""));
  f.set_attribute("list", std::vector<double>{1, 2});
  f.set_attribute("text", "3");

  EXPECT_EQ(f.attribute_int("three"), 3);
  EXPECT_EQ(f.attribute_uint("three"), 3u);
  EXPECT_EQ(f.attribute_double("minus_one"), -1.0);
  EXPECT_EQ(f.attribute_double("two_53"), 9007199254740992.0);
  EXPECT_THAT(f.attribute_ints("list"), ElementsAre(1, 2));
  EXPECT_TRUE(std::isnan(f.attribute_double("nan")));

  const std::string root = f.path();
  EXPECT_EQ(error_of([&] { (void)f.attribute_int("half"); }),
            root + ": attribute 'half' = 2.5 is not an integer in the range of int64");
  EXPECT_THAT(error_of([&] { (void)f.attribute_uint("minus_one"); }), HasSubstr("is negative"));
  EXPECT_THAT(error_of([&] { (void)f.attribute_int("big_unsigned"); }),
              HasSubstr("18446744073709551615 is out of the range of int64"));
  EXPECT_THAT(error_of([&] { (void)f.attribute_double("two_53_plus_1"); }),
              HasSubstr("9007199254740993 is not exactly representable as a double"));
  EXPECT_THAT(error_of([&] { (void)f.attribute_int("huge"); }), HasSubstr("not an integer"));
  EXPECT_THAT(error_of([&] { (void)f.attribute_int("nan"); }), HasSubstr("not an integer"));
  EXPECT_EQ(error_of([&] { (void)f.attribute_double("list"); }),
            root + ": attribute 'list' has 2 values, expected one");
  EXPECT_EQ(error_of([&] { (void)f.attribute_double("text"); }),
            root + ": attribute 'text' is a string, expected a number");
  EXPECT_EQ(error_of([&] { (void)f.attribute_string("three"); }),
            root + ": attribute 'three' is a floating-point number, expected a string");
  EXPECT_THAT(error_of([&] { (void)f.attribute_string("no_such"); }),
              HasSubstr(root + ": no attribute 'no_such'"));
}

// ---- Groups
// --------------------------------------------------------------------------------------

TEST(H5Group, ChildrenInCreationOrderAndNestedPaths) {
  TempDir dir;
  const std::string path = dir.file("groups.h5");
  {
    File f = File::create(path);
    auto z = f.create_group("zeta");
    f.create_group("alpha");
    z.create_group("inner")
        .create_dataset("values", DType::i64, {2})
        .write_rows(0, 2, std::vector<std::int64_t>{5, 6});
    f.create_dataset("middle", DType::f64, {1});
    f.create_group("beta");
    f.close();
  }
  const File f = File::open(path);
  EXPECT_THAT(f.children(), ElementsAre("zeta", "alpha", "middle", "beta"));
  EXPECT_TRUE(f.exists("zeta"));
  EXPECT_TRUE(f.exists("zeta/inner/values"));
  EXPECT_TRUE(f.exists("/zeta/inner/"));
  EXPECT_TRUE(f.exists("/"));
  EXPECT_FALSE(f.exists("gamma"));
  EXPECT_FALSE(f.exists("gamma/inner"));  // missing intermediate: no, not an error
  EXPECT_FALSE(f.exists("middle/x"));     // intermediate is a dataset
  EXPECT_FALSE(f.exists(""));
  const auto inner = f.open_group("zeta/inner");
  EXPECT_EQ(inner.path(), path + ":/zeta/inner");
  EXPECT_EQ(inner.file_name(), path);
  EXPECT_THAT(inner.children(), ElementsAre("values"));
  const auto values = inner.open_dataset("values");
  EXPECT_EQ(values.path(), path + ":/zeta/inner/values");
  EXPECT_THAT(values.read_all_int(), ElementsAre(5, 6));
  // An absolute name from a subgroup refers to the file root.
  EXPECT_EQ(inner.open_dataset("/middle").path(), path + ":/middle");
  EXPECT_EQ(f.open_group("zeta").open_group("inner").path(), path + ":/zeta/inner");
}

// ---- Chunked, extendible datasets
// -----------------------------------------------------------------

TEST(H5Chunked, GrowsShrinksAndRefusesWritesBeyondTheExtent) {
  TempDir dir;
  const std::string path = dir.file("chunked.h5");
  {
    File f = File::create(path);
    auto ds = f.create_dataset("x", DType::f64, {0, 2}, {.chunk_rows = 3});
    EXPECT_THAT(ds.shape(), ElementsAre(0u, 2u));
    EXPECT_THAT(error_of([&] {
                  ds.write_rows(0, 1, std::vector<double>{1, 2});
                }),
                HasSubstr(path + ":/x: write_rows(row0 = 0, n = 1): rows [0, 1) are outside the "
                                 "dataset's 0 rows"));
    ds.set_extent_rows(5);
    EXPECT_THAT(ds.shape(), ElementsAre(5u, 2u));
    ds.write_rows(0, 5, std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    EXPECT_THROW(ds.write_rows(4, 2, std::vector<double>{1, 2, 3, 4}), Error);  // straddles the end
    ds.set_extent_rows(2);
    EXPECT_THAT(ds.shape(), ElementsAre(2u, 2u));
    std::vector<double> out(4);
    ds.read_rows(0, 2, out);
    EXPECT_THAT(out, ElementsAre(0, 1, 2, 3));
    EXPECT_THROW(ds.read_rows(1, 2, out), Error);
    // Growing again: the discarded rows are gone (read as the fill value 0).
    ds.set_extent_rows(4);
    ds.write_rows(3, 1, std::vector<double>{-6, -7});
    f.close();
  }
  File f = File::open(path, Access::read_write);
  auto ds = f.open_dataset("x", 1 << 20);
  EXPECT_EQ(ds.read_all_double(), (std::vector<double>{0, 1, 2, 3, 0, 0, -6, -7}));
  // Resuming: grow and write after a reopen.
  ds.set_extent_rows(40);
  std::vector<double> rows(72);
  for (std::size_t k = 0; k < rows.size(); ++k) rows[k] = static_cast<double>(k) + 0.5;
  ds.write_rows(4, 36, rows);
  std::vector<double> back(72);
  ds.read_rows(4, 36, back);
  EXPECT_EQ(back, rows);
  // Contiguous datasets have a fixed extent.
  auto fixed = f.create_dataset("fixed", DType::f64, {3});
  EXPECT_THAT(error_of([&] { fixed.set_extent_rows(4); }),
              HasSubstr(path + ":/fixed: set_extent_rows: dataset is not chunked"));
}

TEST(H5Chunked, AllocateEarlyAndDeflateStoreTheSameValues) {
  TempDir dir;
  const std::string path = dir.file("options.h5");
  std::vector<double> values(1000 * 3);
  for (std::size_t k = 0; k < values.size(); ++k) values[k] = std::sin(static_cast<double>(k));
  {
    File f = File::create(path);
    f.create_dataset("early", DType::f64, {1000, 3},
                     {.chunk_rows = 128, .allocate_early = true, .chunk_cache_bytes = 64 << 10})
        .write_rows(0, 1000, values);
    f.create_dataset("deflated", DType::f64, {1000, 3}, {.chunk_rows = 100, .deflate_level = 4})
        .write_rows(0, 1000, values);
    f.create_dataset("early_contiguous", DType::f64, {1000, 3}, {.allocate_early = true})
        .write_rows(0, 1000, values);
    EXPECT_THAT(error_of([&] { f.create_dataset("bad", DType::f64, {3}, {.deflate_level = 1}); }),
                HasSubstr("compression needs a chunked dataset"));
    EXPECT_THAT(error_of([&] {
                  f.create_dataset("bad", DType::f64, {3, 2, 1});
                }),
                HasSubstr("datasets have 1 or 2 dimensions, got 3"));
    f.close();
  }
  const File f = File::open(path);
  for (const char* name : {"early", "deflated", "early_contiguous"}) {
    SCOPED_TRACE(name);
    auto ds = f.open_dataset(name);
    EXPECT_EQ(ds.read_all_double(), values);
    const hid_t dcpl = H5Dget_create_plist(ds.id());
    H5D_alloc_time_t alloc{};
    H5Pget_alloc_time(dcpl, &alloc);
    if (std::string(name) != "deflated") {
      EXPECT_EQ(alloc, H5D_ALLOC_TIME_EARLY);
    }
    EXPECT_EQ(H5Pget_nfilters(dcpl), std::string(name) == "deflated" ? 1 : 0);
    H5Pclose(dcpl);
  }
  // Early allocation means storage exists before any write.
  File g = File::create(dir.file("early_only.h5"));
  auto early =
      g.create_dataset("x", DType::f64, {4096, 4}, {.chunk_rows = 1024, .allocate_early = true});
  EXPECT_EQ(H5Dget_storage_size(early.id()), 4096u * 4 * 8);
  auto late = g.create_dataset("y", DType::f64, {4096, 4}, {.chunk_rows = 1024});
  EXPECT_EQ(H5Dget_storage_size(late.id()), 0u);
}

// ---- Strings ----------------------------------------------------------------------------------

TEST(H5Strings, FixedAndVariableLengthDatasets) {
  TempDir dir;
  const std::string path = dir.file("strings.h5");
  {
    File f = File::create(path);
    auto fixed = f.create_string_dataset("failures", 0, 4, {.chunk_rows = 8});
    fixed.set_extent_rows(4);
    const std::vector<std::string> rows{"ok", "abcd", "abcdef", "aé€"};
    fixed.write_string_rows(0, rows);
    fixed.write_string_rows(1, std::vector<std::string>{"xyz"});
    auto names = f.create_string_dataset("parameter", std::vector<std::string>{"θ₁", "", "mean_x"});
    EXPECT_EQ(names.read_all_strings(), (std::vector<std::string>{"θ₁", "", "mean_x"}));
    f.create_string_dataset("none", std::vector<std::string>{});
    auto num = f.create_dataset("num", DType::f64, {1});
    EXPECT_THAT(error_of([&] { num.write_string_rows(0, std::vector<std::string>{"a"}); }),
                HasSubstr("write_string_rows needs a fixed-length string dataset"));
    EXPECT_THAT(error_of([&] { (void)num.read_all_strings(); }),
                HasSubstr(path + ":/num: dataset holds a floating-point number, expected strings"));
    EXPECT_THAT(error_of([&] { (void)names.read_all_double(); }),
                HasSubstr(path + ":/parameter: dataset holds a string, expected numbers"));
    EXPECT_THAT(error_of([&] { (void)names.dtype(); }), HasSubstr("which fsbi does not use"));
    f.close();
  }
  const File f = File::open(path);
  // Cut to 4 bytes, never inside a UTF-8 character ("é" is 2 bytes, "€" is 3).
  EXPECT_THAT(f.open_dataset("failures").read_all_strings(),
              ElementsAre("ok", "xyz", "abcd", "aé"));
  EXPECT_THAT(f.open_dataset("parameter").read_all_strings(), ElementsAre("θ₁", "", "mean_x"));
  EXPECT_TRUE(f.open_dataset("none").read_all_strings().empty());
}

// ---- File format -------------------------------------------------------------------------------

TEST(H5Format, SuperblockV0CreationOrderTrackedAndNoTimestamps) {
  TempDir dir;
  const std::string path = dir.file("format.h5");
  {
    File f = File::create(path);
    auto g = f.create_group("posterior");
    auto ds = g.create_dataset("theta", DType::f64, {2, 2}, {.chunk_rows = 2});
    unsigned flags = 0;
    const hid_t fcpl = H5Fget_create_plist(f.id());
    H5Pget_link_creation_order(fcpl, &flags);
    EXPECT_EQ(flags, unsigned{H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED});
    H5Pget_attr_creation_order(fcpl, &flags);
    EXPECT_EQ(flags, unsigned{H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED});
    H5Pclose(fcpl);
    const hid_t gcpl = H5Gget_create_plist(g.id());
    H5Pget_link_creation_order(gcpl, &flags);
    EXPECT_EQ(flags, unsigned{H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED});
    H5Pget_attr_creation_order(gcpl, &flags);
    EXPECT_EQ(flags, unsigned{H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED});
    hbool_t times = true;
    H5Pget_obj_track_times(gcpl, &times);
    EXPECT_FALSE(times);
    H5Pclose(gcpl);
    const hid_t dcpl = H5Dget_create_plist(ds.id());
    H5Pget_attr_creation_order(dcpl, &flags);
    EXPECT_EQ(flags, unsigned{H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED});
    times = true;
    H5Pget_obj_track_times(dcpl, &times);
    EXPECT_FALSE(times);
    H5Pclose(dcpl);
    f.close();
  }
  const std::string bytes = read_bytes(path);
  ASSERT_GT(bytes.size(), 9u);
  EXPECT_EQ(bytes.substr(0, 8), "\x89HDF\r\n\x1a\n");
  EXPECT_EQ(static_cast<int>(bytes[8]), 0) << "superblock version";
}

void write_sample(const std::string& path) {
  File f = File::create(path);
  f.set_attribute("_NCProperties", "version=2,fsbi=0.1.0,hdf5=" + hdf5_version());
  f.set_attribute("seed", std::uint64_t{12345});
  auto sims = f.create_group("simulations");
  sims.set_attribute("parameter_names", std::vector<std::string>{"θ₁", "θ₂"});
  sims.set_attribute("prior_low", std::vector<double>{-1, -1});
  auto theta =
      sims.create_dataset("theta", DType::f64, {1000, 2},
                          {.chunk_rows = 256, .allocate_early = true, .chunk_cache_bytes = 8192});
  auto status = sims.create_dataset("status", DType::i8, {0}, {.chunk_rows = 64});
  auto x = sims.create_dataset("x", DType::f32, {1000, 3}, {.chunk_rows = 100, .deflate_level = 6});
  std::vector<double> t(2000), xs(3000);
  for (std::size_t k = 0; k < t.size(); ++k) t[k] = std::cos(static_cast<double>(k));
  for (std::size_t k = 0; k < xs.size(); ++k) xs[k] = static_cast<double>(k % 17) / 4.0;
  theta.write_rows(0, 1000, t);
  x.write_rows(0, 1000, xs);
  status.set_extent_rows(100);
  status.write_rows(0, 100, std::vector<std::int8_t>(100, 1));
  auto post = f.create_group("posterior");
  post.create_string_dataset("parameter", std::vector<std::string>{"θ₁", "θ₂"});
  auto failures = post.create_string_dataset("failures", 3, 16);
  failures.write_string_rows(0, std::vector<std::string>{"nan", "crash", "timeout"});
  for (int k = 0; k < 12; ++k) {  // more than 8 attributes: dense storage
    std::string name = "a";
    name += std::to_string(k);
    post.set_attribute(name, static_cast<double>(k));
  }
  f.close();
}

TEST(H5Format, SameContentGivesByteIdenticalFiles) {
  TempDir dir;
  write_sample(dir.file("one.h5"));
  // Something else in between, so HDF5's free lists and our heap are in a different state.
  {
    File other = File::create(dir.file("other.h5"));
    other.create_group("g").set_attribute("s", std::string(1000, 'x'));
    other.create_dataset("d", DType::f64, {10}).write_rows(0, 10, std::vector<double>(10, 3.0));
  }
  write_sample(dir.file("two.h5"));
  const std::string a = read_bytes(dir.file("one.h5"));
  const std::string b = read_bytes(dir.file("two.h5"));
  ASSERT_GT(a.size(), 1000u);
  ASSERT_EQ(a.size(), b.size());
  std::size_t first_difference = a.size();
  for (std::size_t k = 0; k < a.size(); ++k)
    if (a[k] != b[k]) {
      first_difference = k;
      break;
    }
  EXPECT_EQ(first_difference, a.size()) << "files differ first at byte " << first_difference;
}

// ---- File handles
// -----------------------------------------------------------------------------------

TEST(H5File, CloseClosesChildrenAndIsIdempotentAndMovesAreSafe) {
  TempDir dir;
  const std::string path = dir.file("close.h5");
  File f = File::create(path);
  auto g = f.create_group("g");
  auto ds = g.create_dataset("d", DType::i32, {2});
  ds.write_rows(0, 2, std::vector<std::int32_t>{4, 5});
  File moved = std::move(f);
  EXPECT_EQ(moved.filename(), path);
  f.close();  // moved-from: nothing to do
  moved.close();
  moved.close();  // second close: nothing to do
  // The strong close degree closed the open group and dataset with the file: using them throws
  // instead of silently keeping the file open.
  EXPECT_THROW((void)ds.shape(), Error);
  EXPECT_THROW(g.create_group("h"), Error);
  // and the file is complete on disk, openable for writing.
  File again = File::open(path, Access::read_write);
  EXPECT_THAT(again.open_dataset("g/d").read_all_int(), ElementsAre(4, 5));
  again.open_dataset("g/d").write_rows(1, 1, std::vector<std::int32_t>{6});
  again.close();
  // Strong close is per File: objects opened through another File on the same path live on.
  File a = File::open(path);
  File b = File::open(path);
  auto da = a.open_dataset("g/d");
  auto db = b.open_dataset("g/d");
  a.close();
  EXPECT_THAT(db.read_all_int(), ElementsAre(4, 6));
  EXPECT_THAT(error_of([&] { (void)da.read_all_int(); }), HasSubstr(path + ":/g/d: "));
}

TEST(H5File, ReadWriteOpenAppendsToAnExistingFile) {
  TempDir dir;
  const std::string path = dir.file("append.h5");
  File::create(path).create_group("a");
  {
    File f = File::open(path, Access::read_write);
    f.create_group("b").set_attribute("n", std::int64_t{2});
    f.open_group("a").set_attribute("n", std::int64_t{1});
    f.close();
  }
  File f = File::open(path);
  EXPECT_THAT(f.children(), ElementsAre("a", "b"));
  EXPECT_EQ(f.open_group("a").attribute_int("n"), 1);
  EXPECT_EQ(f.open_group("b").attribute_int("n"), 2);
  // Read-only means read-only.
  EXPECT_THAT(error_of([&] { f.create_group("c"); }),
              HasSubstr(path + ":/c: creating group failed: "));
}

// ---- Crash consistency
// ------------------------------------------------------------------------------

// The contract the simulation engine relies on: a chunked, early-allocated dataset written within
// its extent, flushed after each block, with a progress counter written and flushed after each
// data flush, survives SIGKILL of the writer: the file opens and every row up to the counter
// holds what was written.
TEST(H5Crash, EarlyAllocatedDatasetSurvivesSigkillUpToTheFlushedCounter) {
  TempDir dir;
  const std::string path = dir.file("killed.h5");
  constexpr std::uint64_t rows = 100000, cols = 4, block = 1000, blocks_before_kill = 37;
  auto value = [](std::uint64_t r, std::uint64_t c) {
    return static_cast<double>(r * cols + c) + 0.25;
  };

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: no gtest macros, no normal exit (atexit handlers would close HDF5 cleanly).
    try {
      File f = File::create(path);
      f.set_attribute("what", "killed mid-run");
      auto x = f.create_dataset(
          "x", DType::f64, {rows, cols},
          {.chunk_rows = 4096, .allocate_early = true, .chunk_cache_bytes = 256 << 10});
      auto done = f.create_dataset("rows_done", DType::i64, {1}, {.allocate_early = true});
      done.write_rows(0, 1, std::vector<std::int64_t>{0});
      f.flush();
      std::vector<double> buf(block * cols);
      for (std::uint64_t b = 0;; ++b) {
        for (std::uint64_t r = 0; r < block; ++r)
          for (std::uint64_t c = 0; c < cols; ++c) buf[r * cols + c] = value(b * block + r, c);
        x.write_rows(b * block, block, buf);
        if (b == blocks_before_kill) raise(SIGKILL);  // this block written, never flushed
        x.flush();
        done.write_rows(0, 1,
                        std::vector<std::int64_t>{static_cast<std::int64_t>((b + 1) * block)});
        done.flush();
      }
    } catch (...) {
      _exit(3);
    }
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status))
      << "child exited with " << WEXITSTATUS(status) << " (3 = HDF5 error)";
  ASSERT_EQ(WTERMSIG(status), SIGKILL);

  {
    const File f = File::open(path);
    EXPECT_EQ(f.attribute_string("what"), "killed mid-run");
    const auto counter = f.open_dataset("rows_done").read_all_int();
    ASSERT_THAT(counter, ElementsAre(static_cast<std::int64_t>(blocks_before_kill * block)));
    auto x = f.open_dataset("x");
    EXPECT_THAT(x.shape(), ElementsAre(rows, cols));
    const auto n = static_cast<std::uint64_t>(counter[0]);
    std::vector<double> got(n * cols);
    x.read_rows(0, n, got);
    std::uint64_t wrong = 0;
    for (std::uint64_t r = 0; r < n; ++r)
      for (std::uint64_t c = 0; c < cols; ++c) wrong += got[r * cols + c] != value(r, c);
    EXPECT_EQ(wrong, 0u) << "of " << n * cols << " values up to the counter";
  }
  // A resumed run opens it for writing and carries on.
  {
    File f = File::open(path, Access::read_write);
    auto x = f.open_dataset("x", 256 << 10);
    std::vector<double> buf(block * cols);
    const std::uint64_t r0 = blocks_before_kill * block;
    for (std::uint64_t r = 0; r < block; ++r)
      for (std::uint64_t c = 0; c < cols; ++c) buf[r * cols + c] = value(r0 + r, c);
    x.write_rows(r0, block, buf);
    f.open_dataset("rows_done")
        .write_rows(0, 1, std::vector<std::int64_t>{static_cast<std::int64_t>(r0 + block)});
    f.close();
  }
  const File f = File::open(path);
  EXPECT_THAT(f.open_dataset("rows_done").read_all_int(),
              ElementsAre(static_cast<std::int64_t>((blocks_before_kill + 1) * block)));
  std::vector<double> last(cols);
  f.open_dataset("x").read_rows(blocks_before_kill * block + block - 1, 1, last);
  EXPECT_EQ(last[3], value(blocks_before_kill * block + block - 1, 3));
}

// ---- Error messages
// --------------------------------------------------------------------------------

TEST(H5Errors, OpeningWhatIsNotAnHdf5File) {
  TempDir dir;
  const std::string missing = dir.file("missing.h5");
  EXPECT_EQ(error_of([&] { File::open(missing); }), missing + ": no such file");
  EXPECT_EQ(error_of([&] { File::open(dir.path().string()); }),
            dir.path().string() + ": is a directory, expected an HDF5 file");
  const std::string text = dir.file("notes.h5");
  std::ofstream(text) << "theta,x\n1,2\n";
  EXPECT_EQ(error_of([&] { File::open(text); }), text + ": not an HDF5 file");
  EXPECT_EQ(error_of([&] { File::open(text, Access::read_write); }), text + ": not an HDF5 file");
  const std::string empty = dir.file("empty.h5");
  std::ofstream{empty};
  EXPECT_EQ(error_of([&] { File::open(empty); }), empty + ": not an HDF5 file");
}

// A file cut short (an interrupted copy or download) gets a message with the cause and the fix,
// not HDF5's "truncated file: eof = ..., stored_eof = ...".
TEST(H5Errors, TruncatedFileNamesTheCauseAndTheFix) {
  TempDir dir;
  const std::string path = dir.file("cut.h5");
  {
    const std::vector<double> values(4096, 1.5);
    File f = File::create(path);
    f.create_dataset("values", DType::f64, {4096}, {}).write_rows(0, 4096, std::span<const double>(values));
  }
  const auto full = std::filesystem::file_size(path);
  ASSERT_GT(full, 32768u);
  std::filesystem::resize_file(path, 20000);
  const std::string expected = path + ": truncated HDF5 file (20000 of its " + std::to_string(full) +
                               " bytes): it was cut short while being copied or written; copy it "
                               "again from its source, or rerun the fsbi command that wrote it";
  EXPECT_EQ(error_of([&] { File::open(path); }), expected);
  EXPECT_EQ(error_of([&] { File::open(path, Access::read_write); }), expected);
}

TEST(H5Errors, HdfStackIsFoldedIntoOneLine) {
  TempDir dir;
  // A folder where the file should be: HDF5's own failure, its stack folded into one line.
  const std::string folder = dir.file("taken.h5");
  std::filesystem::create_directory(folder);
  const std::string msg = error_of([&] { File::create(folder); });
  EXPECT_THAT(msg, HasSubstr(folder + ": create failed: "));
  EXPECT_THAT(msg, HasSubstr("Is a directory"));
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  std::cout << "[message] " << msg << "\n";
}

TEST(H5Errors, CreatingInAMissingFolderSaysWhichFolder) {
  TempDir dir;
  const std::string nowhere = dir.file("no/such/dir/x.h5");
  EXPECT_EQ(error_of([&] { File::create(nowhere); }),
            nowhere + ": cannot be created: the folder '" + dir.file("no/such/dir") +
                "' does not exist; create it first or write elsewhere");
  const std::string plain = dir.file("plain");
  std::ofstream(plain) << "x";
  EXPECT_EQ(error_of([&] { File::create(plain + "/x.h5"); }),
            plain + "/x.h5: cannot be created: '" + plain + "' is not a folder; create it first or write elsewhere");
}

TEST(H5Errors, MissingObjectsAttributesAndWrongSizes) {
  TempDir dir;
  const std::string path = dir.file("e.h5");
  File f = File::create(path);
  auto sims = f.create_group("simulations");
  auto theta = sims.create_dataset("theta", DType::f64, {10, 2});
  EXPECT_EQ(error_of([&] { (void)f.open_dataset("a/b"); }), path + ": no dataset /a/b");
  EXPECT_EQ(error_of([&] { (void)sims.open_dataset("x"); }), path + ": no dataset /simulations/x");
  EXPECT_EQ(error_of([&] { (void)f.open_group("a/b"); }), path + ": no group /a/b");
  EXPECT_EQ(error_of([&] { (void)f.open_dataset("simulations"); }),
            path + ": /simulations is a group, not a dataset");
  EXPECT_EQ(error_of([&] { (void)f.open_group("simulations/theta"); }),
            path + ": /simulations/theta is a dataset, not a group");
  EXPECT_EQ(error_of([&] { (void)sims.attribute_uint("seed"); }),
            path + ":/simulations: no attribute 'seed'");
  EXPECT_EQ(error_of([&] { (void)theta.attribute_string("units"); }),
            path + ":/simulations/theta: no attribute 'units'");
  EXPECT_EQ(error_of([&] { theta.write_rows(0, 3, std::vector<double>(5)); }),
            path +
                ":/simulations/theta: write_rows(row0 = 0, n = 3): expected 6 values (3 rows x 2 "
                "columns), got 5");
  std::vector<double> out(7);
  EXPECT_EQ(error_of([&] { theta.read_rows(2, 4, out); }),
            path +
                ":/simulations/theta: read_rows(row0 = 2, n = 4): expected 8 values (4 rows x 2 "
                "columns), got 7");
  EXPECT_THAT(error_of([&] { theta.read_rows(9, 2, std::span<double>(out.data(), 4)); }),
              HasSubstr("rows [9, 11) are outside the dataset's 10 rows"));
  EXPECT_THAT(error_of([&] { sims.create_group("theta"); }),
              HasSubstr(path + ":/simulations/theta: creating group failed: "));
}

TEST(H5Errors, NothingIsPrintedToStderrOnAnyThread) {
  TempDir dir;
  const std::string nowhere = dir.file("taken.h5");  // a folder: HDF5 itself fails
  std::filesystem::create_directory(nowhere);
  testing::internal::CaptureStderr();
  std::string msg;
  // Debian's thread-safe HDF5 keeps the printing switch per thread: a writer stage running on a
  // worker thread must be quiet too.
  std::thread worker([&] {
    try {
      File::create(nowhere);
    } catch (const Error& e) {
      msg = e.what();
    }
  });
  worker.join();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(msg, HasSubstr("create failed"));
  EXPECT_EQ(err, "");
}

// ---- Python interop
// ------------------------------------------------------------------------------

bool have_h5py() {
  try {
    return fsbi::test::run({"/usr/bin/python3", "-c", "import h5py"}).exit_code == 0;
  } catch (const std::exception&) {
    return false;
  }
}

TEST(H5Python, H5pyReadsWhatWeWrite) {
  if (!have_h5py()) GTEST_SKIP() << "/usr/bin/python3 cannot import h5py (Debian: python3-h5py)";
  TempDir dir;
  const std::string path = dir.file("for_python.h5");
  {
    File f = File::create(path);
    f.set_attribute("title", "two moons – θ");
    f.set_attribute("seed", std::uint64_t{42});
    auto g = f.create_group("simulations");
    g.set_attribute("parameter_names", std::vector<std::string>{"θ₁", "θ₂"});
    g.set_attribute("prior_low", std::vector<double>{-1.0, -0.5});
    auto x = g.create_dataset("x", DType::f64, {0, 3}, {.chunk_rows = 2, .allocate_early = true});
    x.set_extent_rows(2);
    x.write_rows(0, 2, std::vector<double>{0.5, -1.0, 2.25, 3.0, 1e-3, -4.0});
    g.create_dataset("flags", DType::i8, {3}).write_rows(0, 3, std::vector<std::int8_t>{1, 0, -1});
    g.create_string_dataset("names", std::vector<std::string>{"a", "βeta"});
    auto fixed = g.create_string_dataset("failures", 2, 8);
    fixed.write_string_rows(0, std::vector<std::string>{"nan", "timeout"});
    f.close();
  }
  const auto r = fsbi::test::run({"/usr/bin/python3", "-c", R"PY(
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    g = f["simulations"]
    x = g["x"]
    print("x", x.shape, x.dtype, x.maxshape, x.chunks, x[...].tolist())
    print("flags", g["flags"].dtype, g["flags"][...].tolist())
    print("title", f.attrs["title"])
    print("seed", int(f.attrs["seed"]), f.attrs["seed"].dtype)
    print("names", list(g.attrs["parameter_names"]))
    print("low", g.attrs["prior_low"].tolist())
    print("strings", g["names"].asstr()[...].tolist())
    print("failures", g["failures"][...].tolist())
    print("children", list(f.keys()), list(g.keys()))
)PY",
                                  path},
                                 {"PYTHONIOENCODING=utf-8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(
      r.out,
      HasSubstr("x (2, 3) float64 (None, 3) (2, 3) [[0.5, -1.0, 2.25], [3.0, 0.001, -4.0]]\n"));
  EXPECT_THAT(r.out, HasSubstr("flags int8 [1, 0, -1]\n"));
  EXPECT_THAT(r.out, HasSubstr("title two moons – θ\n"));
  EXPECT_THAT(r.out, HasSubstr("seed 42 uint64\n"));
  EXPECT_THAT(r.out, HasSubstr("names ['θ₁', 'θ₂']\n"));
  EXPECT_THAT(r.out, HasSubstr("low [-1.0, -0.5]\n"));
  EXPECT_THAT(r.out, HasSubstr("strings ['a', 'βeta']\n"));
  EXPECT_THAT(r.out, HasSubstr("failures [b'nan', b'timeout']\n"));
  // Creation order is tracked and indexed, so h5py (like netCDF-4) lists in creation order.
  EXPECT_THAT(r.out, HasSubstr("children ['simulations'] ['x', 'flags', 'names', 'failures']\n"));
}

TEST(H5Python, WeReadWhatH5pyWrites) {
  if (!have_h5py()) GTEST_SKIP() << "/usr/bin/python3 cannot import h5py (Debian: python3-h5py)";
  TempDir dir;
  const std::string path = dir.file("from_python.h5");
  const auto r = fsbi::test::run({"/usr/bin/python3", "-c", R"PY(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["fixed"] = np.bytes_(b"abc")
    f.attrs["vlen"] = "héllo"
    f.attrs["i16"] = np.int16(-7)
    f.attrs["u8s"] = np.array([1, 2, 255], dtype=np.uint8)
    f.attrs["f32"] = np.float32(0.5)
    f.attrs["strs"] = ["a", "bé"]
    f.create_group("zz")
    f.create_group("aa")
    f["fixed_strings"] = np.array([b"one", b"three"], dtype="S5")
    f["vlen_strings"] = np.array(["x", "yé"], dtype=h5py.string_dtype())
    f["f32"] = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
    f["i16"] = np.array([-3, 4], dtype=np.int16)
)PY",
                                  path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const File f = File::open(path);
  // No creation order tracked: children come in name order.
  EXPECT_THAT(f.children(), ElementsAre("aa", "f32", "fixed_strings", "i16", "vlen_strings", "zz"));
  EXPECT_EQ(f.attribute_string("fixed"), "abc");
  EXPECT_EQ(f.attribute_string("vlen"), "héllo");
  EXPECT_EQ(f.attribute_int("i16"), -7);
  EXPECT_EQ(f.attribute_double("i16"), -7.0);
  EXPECT_THAT(f.attribute_ints("u8s"), ElementsAre(1, 2, 255));
  EXPECT_EQ(f.attribute_double("f32"), 0.5);
  EXPECT_THAT(f.attribute_strings("strs"), ElementsAre("a", "bé"));
  EXPECT_THAT(f.attribute_names(),
              testing::UnorderedElementsAre("fixed", "vlen", "i16", "u8s", "f32", "strs"));
  EXPECT_THAT(f.open_dataset("fixed_strings").read_all_strings(), ElementsAre("one", "three"));
  EXPECT_THAT(f.open_dataset("vlen_strings").read_all_strings(), ElementsAre("x", "yé"));
  auto f32 = f.open_dataset("f32");
  EXPECT_EQ(f32.dtype(), DType::f32);
  EXPECT_THAT(f32.read_all_double(), ElementsAre(0, 0.25, 0.5, 0.75, 1.0, 1.25));
  EXPECT_THAT(
      error_of([&] { (void)f.open_dataset("i16").dtype(); }),
      HasSubstr(path + ":/i16: dataset holds an integer of 2 bytes, which fsbi does not use"));
  EXPECT_THAT(f.open_dataset("i16").read_all_int(), ElementsAre(-3, 4));
}

// A file in HDF5 1.10's newest format (superblock v3, which records "open for writing") is still
// readable; writing into it is refused, so fsbi never leaves such a file unopenable after a kill.
TEST(H5Python, NewestFormatFilesOpenReadOnly) {
  if (!have_h5py()) GTEST_SKIP() << "/usr/bin/python3 cannot import h5py (Debian: python3-h5py)";
  TempDir dir;
  const std::string path = dir.file("latest.h5");
  const auto r = fsbi::test::run({"/usr/bin/python3", "-c", R"PY(
import sys, h5py
with h5py.File(sys.argv[1], "w", libver="latest") as f:
    f["x"] = [1.5, 2.5]
)PY",
                                  path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(static_cast<int>(read_bytes(path).at(8)), 3) << "superblock version";
  EXPECT_THAT(File::open(path).open_dataset("x").read_all_double(), ElementsAre(1.5, 2.5));
  EXPECT_THAT(error_of([&] { File::open(path, Access::read_write); }),
              HasSubstr(path + ": open for writing failed: superblock version exceeds high bound"));
}

}  // namespace
}  // namespace fsbi::h5
