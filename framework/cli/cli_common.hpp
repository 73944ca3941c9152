// Helpers shared by the subcommands: option parsing with --help, and plugin look-up.
#pragma once

#include "commands.hpp"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <iostream>
#include <string>
#include <vector>

namespace fsbi::cli {

namespace po = boost::program_options;

// Boost reads an unsigned option (a count, a seed) through lexical_cast, which takes "-5" for
// 2^64 − 5: `-n -5` would start 18 quintillion simulations. Refuse a sign on those options'
// tokens before they are converted.
inline void refuse_negative_unsigned(const po::parsed_options& parsed, const po::options_description& desc) {
  for (const po::option& o : parsed.options) {
    const po::option_description* d = desc.find_nothrow(o.string_key, false);
    if (!d) continue;
    const po::value_semantic* sem = d->semantic().get();
    if (!dynamic_cast<const po::typed_value<unsigned int>*>(sem) &&
        !dynamic_cast<const po::typed_value<unsigned long>*>(sem) &&
        !dynamic_cast<const po::typed_value<unsigned long long>*>(sem))
      continue;
    for (const std::string& v : o.value)
      if (v.find('-') != std::string::npos)
        throw UsageError(fmt::format("--{} '{}': give a whole number of 0 or more", d->long_name(), v));
  }
}

// Parses `args` against `desc` (positional names optional). Returns false if --help was given
// (the help text has then been printed to stdout).
inline bool parse_args(const Args& args, const char* usage, po::options_description& desc,
                       po::variables_map& vm,
                       const po::positional_options_description* positional = nullptr) {
  desc.add_options()("help,h", "show this help");
  auto parser = po::command_line_parser(args).options(desc);
  if (positional) parser.positional(*positional);
  const po::parsed_options parsed = parser.run();
  refuse_negative_unsigned(parsed, desc);
  po::store(parsed, vm);
  if (vm.count("help")) {
    std::cout << usage << "\n\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  // Every command's --threads (an int): 0 means all cores.
  if (const auto it = vm.find("threads"); it != vm.end())
    if (const int* t = boost::any_cast<int>(&it->second.value()); t && *t < 0)
      throw UsageError(fmt::format("--threads {}: give 0 (all cores) or a positive number", *t));
  return true;
}

}  // namespace fsbi::cli
