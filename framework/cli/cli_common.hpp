// Helpers shared by the subcommands: option parsing with --help, and plugin look-up.
#pragma once

#include "commands.hpp"

#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace fsbi::cli {

namespace po = boost::program_options;

// Parses `args` against `desc` (positional names optional). Returns false if --help was given
// (the help text has then been printed to stdout).
inline bool parse_args(const Args& args, const char* usage, po::options_description& desc,
                       po::variables_map& vm,
                       const po::positional_options_description* positional = nullptr) {
  desc.add_options()("help,h", "show this help");
  auto parser = po::command_line_parser(args).options(desc);
  if (positional) parser.positional(*positional);
  po::store(parser.run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace fsbi::cli
