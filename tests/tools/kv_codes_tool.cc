// Exposes the KV cache's 1-byte codes (backend/cpu/kv_quant.h, util/float8.h) to
// tests/reference/test_kv_quant.py, which compares them with torch's float8 casts.
//
//   inferd_kv_codes_tool encode   e4m3|e5m2            IN.f32 OUT.u8    fp32 -> code, one per value
//   inferd_kv_codes_tool decode   int8|e4m3|e5m2       OUT.f32          the 256 codes as the kernels read them
//   inferd_kv_codes_tool quantize int8|e4m3|e5m2 D     IN.f32 OUT.bin   rows of D values -> per row: fp16 scale, D codes
// Files are raw little-endian arrays.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "backend/cpu/kv_quant.h"
#include "util/float8.h"

namespace {

using inferd::cpu::KvElem;

bool ParseElem(const std::string& s, KvElem* e) {
  if (s == "int8") *e = KvElem::kInt8;
  else if (s == "e4m3") *e = KvElem::kFp8E4M3;
  else if (s == "e5m2") *e = KvElem::kFp8E5M2;
  else return false;
  return true;
}

std::vector<float> ReadF32(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

void Write(const char* path, const void* data, size_t n) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

int Usage() {
  std::fprintf(stderr, "usage: inferd_kv_codes_tool encode e4m3|e5m2 IN OUT | decode int8|e4m3|e5m2 OUT | "
                       "quantize int8|e4m3|e5m2 D IN OUT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return Usage();
  const std::string cmd = argv[1];
  KvElem e;
  if (!ParseElem(argv[2], &e)) return Usage();
  if (cmd == "encode" && argc == 5 && e != KvElem::kInt8) {
    const std::vector<float> x = ReadF32(argv[3]);
    std::vector<uint8_t> codes(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      codes[i] = e == KvElem::kFp8E4M3 ? inferd::Fp32ToFp8E4M3(x[i]) : inferd::Fp32ToFp8E5M2(x[i]);
    }
    Write(argv[4], codes.data(), codes.size());
    return 0;
  }
  if (cmd == "decode" && argc == 4) {
    float v[256];
    for (int c = 0; c < 256; ++c) v[c] = inferd::cpu::KvCodeValue(e, static_cast<uint8_t>(c));
    Write(argv[3], v, sizeof v);
    return 0;
  }
  if (cmd == "quantize" && argc == 6) {
    const int64_t d = std::stoll(argv[3]);
    const std::vector<float> x = ReadF32(argv[4]);
    if (d <= 0 || x.size() % static_cast<size_t>(d) != 0) return Usage();
    const int64_t rows = static_cast<int64_t>(x.size()) / d;
    std::vector<uint8_t> out(static_cast<size_t>(rows * (2 + d)));
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* row = out.data() + r * (2 + d);
      const uint16_t s = inferd::cpu::QuantizeKvVector(e, x.data() + r * d, d, row + 2, 1);
      std::memcpy(row, &s, 2);
    }
    Write(argv[5], out.data(), out.size());
    return 0;
  }
  return Usage();
}
