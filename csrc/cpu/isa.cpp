#include "cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#if defined(FASTNN_X86)
#include <cpuid.h>
#endif

namespace fastnn {

namespace {

struct Features {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512dq = false,
       avx512vl = false, f16c = false;
  std::string name;
};

Features detect() {
  Features f;
#if defined(FASTNN_X86)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = ((unsigned long long)hi << 32) | lo;
  }
  // The OS must save the YMM (bits 1-2) and, for AVX-512, the opmask/ZMM state (bits 5-7).
  bool os_avx = (xcr0 & 0x6) == 0x6;
  bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = os_avx && (b & (1u << 5));
    f.avx512f = os_avx512 && (b & (1u << 16));
    f.avx512dq = os_avx512 && (b & (1u << 17));
    f.avx512bw = os_avx512 && (b & (1u << 30));
    f.avx512vl = os_avx512 && (b & (1u << 31));
  }
  f.fma = f.fma && os_avx;
  unsigned brand[12];
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
    char s[49];
    std::memcpy(s, brand, 48);
    s[48] = 0;
    f.name = s;
    while (!f.name.empty() && f.name.back() == ' ') f.name.pop_back();
    while (!f.name.empty() && f.name.front() == ' ') f.name.erase(0, 1);
  }
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

bool supported(Isa isa) {
  const Features& f = features();
  switch (isa) {
    case Isa::generic: return true;
    case Isa::avx2:
#if defined(FASTNN_X86)
      return f.avx2 && f.fma;
#else
      return false;
#endif
    case Isa::avx512:
#if defined(FASTNN_X86)
      return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx2 && f.fma;
#else
      return false;
#endif
  }
  return false;
}

Isa initial_isa() {
  Isa best = best_isa();
  if (const char* e = std::getenv("FASTNN_ISA")) {
    if (*e) {
      Isa want = parse_isa(e);  // an unknown name is an error: a typo must not go unnoticed
      if (!supported(want))
        fail("FASTNN_ISA", "this CPU does not support '", e, "'; supported: ",
             supported(Isa::avx512) ? "generic, avx2, avx512" : supported(Isa::avx2) ? "generic, avx2" : "generic");
      return want;
    }
  }
  return best;
}

std::atomic<int>& current() {
  static std::atomic<int> isa{(int)initial_isa()};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "generic") return Isa::generic;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  fail("set_isa", "expected one of 'generic', 'avx2', 'avx512', got '", name, "'");
}

Isa best_isa() {
  if (supported(Isa::avx512)) return Isa::avx512;
  if (supported(Isa::avx2)) return Isa::avx2;
  return Isa::generic;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512})
    if (supported(i)) v.push_back(i);
  return v;
}

Isa active_isa() { return (Isa)current().load(std::memory_order_relaxed); }

void set_isa(Isa isa) {
  if (!supported(isa)) fail("set_isa", "this CPU does not support '", isa_name(isa), "'");
  current().store((int)isa);
}

std::string cpu_features() {
  const Features& f = features();
  std::string s;
  auto add = [&](bool on, const char* n) { if (on) { if (!s.empty()) s += ' '; s += n; } };
  add(f.avx512f, "avx512f"); add(f.avx512bw, "avx512bw"); add(f.avx512dq, "avx512dq");
  add(f.avx512vl, "avx512vl"); add(f.avx2, "avx2"); add(f.fma, "fma"); add(f.f16c, "f16c");
  return s.empty() ? "none" : s;
}

namespace {

CacheSizes detect_caches() {
  CacheSizes cs;
#if defined(FASTNN_X86)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return cs;
  const bool amd = b == 0x68747541u;  // "Auth"enticAMD
  unsigned leaf = 4;
  if (amd) {
    // AMD reports the deterministic cache parameters in 0x8000001D, present when the
    // topology-extensions bit (0x80000001 ECX[22]) is set.
    if (__get_cpuid_max(0x80000000, nullptr) < 0x8000001D) return cs;
    __get_cpuid(0x80000001, &a, &b, &c, &d);
    if (!(c & (1u << 22))) return cs;
    leaf = 0x8000001D;
  } else if (__get_cpuid_max(0, nullptr) < 4) {
    return cs;
  }
  for (unsigned sub = 0; sub < 16; ++sub) {
    __cpuid_count(leaf, sub, a, b, c, d);
    const unsigned type = a & 0x1f, level = (a >> 5) & 0x7;
    if (type == 0) break;  // no more caches
    if (type == 2) continue;  // instruction cache
    const int64_t ways = ((b >> 22) & 0x3ff) + 1, parts = ((b >> 12) & 0x3ff) + 1,
                  line = (b & 0xfff) + 1, sets = int64_t(c) + 1;
    const int64_t size = ways * parts * line * sets;
    if (level == 1) cs.l1d = size;
    else if (level == 2) cs.l2 = size;
    else if (level == 3) cs.l3 = size;
    cs.detected = true;
  }
#endif
  return cs;
}

}  // namespace

const CacheSizes& cache_sizes() {
  static const CacheSizes cs = detect_caches();
  return cs;
}

std::string cpu_name() { return features().name.empty() ? "unknown" : features().name; }

bool cpu_is_intel() {
#if defined(FASTNN_X86)
  static const bool intel = [] {
    unsigned a, b, c, d;
    // "GenuineIntel": EBX, EDX, ECX = "Genu", "ineI", "ntel".
    return __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u && d == 0x49656e69u &&
           c == 0x6c65746eu;
  }();
  return intel;
#else
  return false;
#endif
}

}  // namespace fastnn
