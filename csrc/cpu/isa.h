// Which SIMD path the CPU kernels take. isa.cpp is the only file that reads cpuid.
// Order of preference: avx512 -> avx2 (with FMA) -> generic. The generic path is always built.
// FASTNN_ISA=generic|avx2|avx512 (environment) or set_isa() forces a path, so tests can cover
// every path the machine supports.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fastnn {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
Isa active_isa();
Isa best_isa();                       // the best path this CPU (and build) supports
std::vector<Isa> supported_isas();    // generic first
void set_isa(Isa isa);                // throws ValueError if unsupported here
Isa parse_isa(const std::string& name);  // throws ValueError on an unknown name
std::string cpu_features();           // e.g. "avx512f avx512bw avx2 fma"
std::string cpu_name();
bool cpu_is_intel();                  // cpuid vendor "GenuineIntel" (the GEMM's loop order)

// Data cache sizes in bytes as this core sees them (L1d and L2 per core, L3 shared), read from
// cpuid (leaf 4 on Intel, 0x8000001D on AMD) once; typical values where cpuid has none.
struct CacheSizes {
  int64_t l1d = 32 << 10, l2 = 1 << 20, l3 = 8 << 20;
  bool detected = false;
};
const CacheSizes& cache_sizes();

}  // namespace fastnn
