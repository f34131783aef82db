# Writes a C++ source that holds a file's bytes (run with cmake -P by inferd_embed_file):
#   -DIN=<file> -DOUT=<file.cc> -DSYMBOL=<function name> -DNAMESPACE=<namespace>
# The function returns the bytes as a std::string_view. Bytes, not a raw string literal, so
# any content (a ")" followed by a quote, NUL) is safe.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by cmake/embed_file.cmake; do not edit.\n#include <string_view>\n\nnamespace ${NAMESPACE} {\nnamespace {\nconst unsigned char kBytes[] = {\n${bytes}0};\n}  // namespace\nstd::string_view ${SYMBOL}() { return {reinterpret_cast<const char*>(kBytes), ${size}}; }\n}  // namespace ${NAMESPACE}\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
