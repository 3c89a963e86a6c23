# Finds libx265 and libde265 through pkg-config and defines the imported
# targets hevc::x265 and hevc::de265. On failure it names the missing
# packages and how to install them.
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR
    "pkg-config was not found; it is needed to locate libx265 and libde265.\n"
    "Debian/Ubuntu: apt-get install pkg-config libx265-dev libde265-dev")
endif()

pkg_check_modules(X265 QUIET IMPORTED_TARGET x265>=3.5)
pkg_check_modules(DE265 QUIET IMPORTED_TARGET libde265>=1.0.8)

set(_hevc_missing "")
if(NOT X265_FOUND)
  list(APPEND _hevc_missing "x265 >= 3.5 (Debian/Ubuntu package libx265-dev)")
endif()
if(NOT DE265_FOUND)
  list(APPEND _hevc_missing "libde265 >= 1.0.8 (Debian/Ubuntu package libde265-dev)")
endif()
if(_hevc_missing)
  string(REPLACE ";" "\n  " _hevc_missing_text "${_hevc_missing}")
  message(FATAL_ERROR
    "pyweightvc links the HEVC libraries directly, and pkg-config could not find:\n"
    "  ${_hevc_missing_text}\n"
    "Install them (apt-get install libx265-dev libde265-dev) or point "
    "PKG_CONFIG_PATH at their .pc files.")
endif()

add_library(hevc::x265 ALIAS PkgConfig::X265)
add_library(hevc::de265 ALIAS PkgConfig::DE265)
set(HevcLibs_FOUND TRUE)
message(STATUS "pyweightvc: x265 ${X265_VERSION}, libde265 ${DE265_VERSION}")
