# fsbi_add_simulator(<name> SOURCES <src>... [OUTPUT_DIRECTORY <dir>] [INSTALL])
#
# Builds an fsbi simulator plugin: a MODULE library called <name>.so that exports only the entry
# object `fsbi_simulator_entry` (hidden visibility + linker version script). The bundled
# simulators use this function too, so in-tree and out-of-tree plugins are built the same way.
#
#   find_package(fsbi REQUIRED)
#   fsbi_add_simulator(my_model SOURCES my_model.cpp)
#
# The plugin is found by fsbi when its folder is on the plugin search path
# (--plugin-path DIR or FSBI_PLUGIN_PATH=DIR), or when given by path (--simulator ./my_model.so).
# INSTALL installs it into fsbi's own simulator folder, where fsbi finds it without a path.
include_guard(GLOBAL)

function(fsbi_add_simulator name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "INSTALL" "OUTPUT_DIRECTORY;INSTALL_DESTINATION" "SOURCES")
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "fsbi_add_simulator(${name}): no SOURCES given")
  endif()
  set(_FSBI_PLUGIN_MAP "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/fsbi_plugin.map")
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE fsbi::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "${name}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${_FSBI_PLUGIN_MAP}")
  target_link_options(${name} PRIVATE "LINKER:--version-script=${_FSBI_PLUGIN_MAP}")
  # Unresolved symbols are a load-time failure in the user's run; make them a link error instead.
  # (-z,defs breaks sanitizer builds, whose runtime symbols come from the executable.)
  if(NOT FSBI_SANITIZE)
    target_link_options(${name} PRIVATE "LINKER:-z,defs")
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  if(ARG_INSTALL)
    if(ARG_INSTALL_DESTINATION)
      set(_dest "${ARG_INSTALL_DESTINATION}")
    elseif(DEFINED FSBI_PLUGIN_INSTALL_DIR)
      set(_dest "${FSBI_PLUGIN_INSTALL_DIR}")
    else()
      set(_dest "lib/fsbi/simulators")
    endif()
    install(TARGETS ${name} LIBRARY DESTINATION "${_dest}")
  endif()
endfunction()
