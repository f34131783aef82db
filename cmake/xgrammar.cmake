# XGrammar's C++ core (grammar compiler and matcher; vLLM's default structured-output engine),
# built from its PyPI sdist as a static library without the Python bindings. The source is
# fetched by scripts/fetch-xgrammar.sh (install-deps.sh runs it) into the cache directory.
set(INFERD_XGRAMMAR_VERSION 0.2.9)
if(DEFINED ENV{INFERD_CACHE_DIR})
  set(_xgr_cache "$ENV{INFERD_CACHE_DIR}")
else()
  set(_xgr_cache "$ENV{HOME}/.cache/inferd")
endif()
set(INFERD_XGRAMMAR_DIR "${_xgr_cache}/xgrammar-${INFERD_XGRAMMAR_VERSION}" CACHE PATH
  "XGrammar ${INFERD_XGRAMMAR_VERSION} source directory (scripts/fetch-xgrammar.sh)")
if(NOT EXISTS "${INFERD_XGRAMMAR_DIR}/cpp/grammar_matcher.cc")
  message(FATAL_ERROR "XGrammar source not found at ${INFERD_XGRAMMAR_DIR}: run scripts/fetch-xgrammar.sh "
    "(scripts/install-deps.sh does) or set -DINFERD_XGRAMMAR_DIR=...")
endif()
file(GLOB_RECURSE _xgr_sources CONFIGURE_DEPENDS "${INFERD_XGRAMMAR_DIR}/cpp/*.cc")
list(FILTER _xgr_sources EXCLUDE REGEX "/cpp/tvm_ffi/")
add_library(inferd_xgrammar STATIC ${_xgr_sources})
set_target_properties(inferd_xgrammar PROPERTIES CXX_STANDARD 17 UNITY_BUILD OFF)
target_include_directories(inferd_xgrammar PUBLIC "${INFERD_XGRAMMAR_DIR}/include")
target_include_directories(inferd_xgrammar SYSTEM PUBLIC "${INFERD_XGRAMMAR_DIR}/3rdparty/picojson"
  "${INFERD_XGRAMMAR_DIR}/3rdparty/dlpack/include")
target_compile_definitions(inferd_xgrammar PUBLIC XGRAMMAR_ENABLE_CPPTRACE=0)
# Third-party code: its warnings are not ours to fix.
target_compile_options(inferd_xgrammar PRIVATE -w)
target_link_libraries(inferd_xgrammar PUBLIC Threads::Threads)
