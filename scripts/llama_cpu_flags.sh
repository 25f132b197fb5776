#!/bin/sh
# Prints the CMake flags for building llama.cpp (llama-cpp-python) on this machine: the portable
# AVX2 set, plus the AVX-512 extensions when this CPU *runs* them. Each extension is tried with a
# small program that executes one of its instructions; one that the CPU advertises but does not run
# (seen on a VM) fails the try and stays off. The programs start from a volatile value, so that the
# compiler cannot fold them into constants and run no vector instruction at all (it did: AVX-512
# "ran" on an AMD EPYC without it, and the build died with "Illegal instruction"). On Linux, an
# extension /proc/cpuinfo does not list stays off too.
#
# AMX stays off everywhere: on a 2-core VM whose CPU advertises AMX, and where a test program's
# AMX instructions ran, a -march=native build died with "invalid opcode" on `tilezero` in
# llama.cpp's worker threads on its first completion.
#
# Usage: sh scripts/llama_cpu_flags.sh   (CC=... to choose the compiler)
set -u
BASE="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
PORTABLE="$BASE -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
CC=${CC:-cc}
# nothing to try with: the flags used before the tries existed (any AVX2 CPU)
command -v "$CC" >/dev/null 2>&1 || { echo "$PORTABLE"; exit 0; }
dir=$(mktemp -d 2>/dev/null) || { echo "$PORTABLE"; exit 0; }
trap 'rm -rf "$dir"' EXIT

# try NAME COMPILER-FLAGS C-STATEMENTS CPUINFO-FLAG: compiles and runs a program executing the
# statements (`one` is a 1 the compiler cannot see), if /proc/cpuinfo lists the flag
try() {
    cat >"$dir/$1.c" <<PROGRAM
#include <immintrin.h>
#include <stdio.h>
int main(void) {
    volatile int sink = 0, one_ = 1;
    int one = one_;
    $3
    printf("%d\n", sink);
    return 0;
}
PROGRAM
    listed "$4" && "$CC" -O1 $2 "$dir/$1.c" -o "$dir/$1" >/dev/null 2>&1 && "$dir/$1" >/dev/null 2>&1
}

# listed CPUINFO-FLAG: the CPU lists it in /proc/cpuinfo (true where there is no /proc/cpuinfo)
listed() {
    [ -r /proc/cpuinfo ] || return 0
    grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -qx "$1"
}

if ! try avx2 "-mavx2 -mfma -mf16c" \
    '__m256 f = _mm256_fmadd_ps(_mm256_set1_ps((float)one), _mm256_set1_ps(2.0f), _mm256_set1_ps(3.0f));
     __m128i h = _mm256_cvtps_ph(f, 0); __m256i a = _mm256_add_epi32(_mm256_set1_epi32(one), _mm256_set1_epi32(2));
     sink = _mm256_extract_epi32(a, 0) + _mm_extract_epi16(h, 0);' avx2
then
    echo "$BASE"  # no AVX2 here: llama.cpp's generic code
    exit 0
fi
flags=$PORTABLE
if try avx512 "-mavx512f -mavx512bw -mavx512vl -mavx512dq" \
    '__m512i a = _mm512_set1_epi16((short)one); a = _mm512_add_epi16(a, a); __m512 f = _mm512_set1_ps((float)one);
     f = _mm512_add_ps(f, f); __m256i v = _mm256_maskz_add_epi32(0xff, _mm256_set1_epi32(one), _mm256_set1_epi32(2));
     __m512d d = _mm512_and_pd(_mm512_set1_pd((double)one), _mm512_set1_pd(2.0));
     sink = _mm512_reduce_add_epi32(a) + (int)_mm512_reduce_add_ps(f) + _mm256_extract_epi32(v, 0) + (int)_mm512_reduce_add_pd(d);' avx512bw
then
    flags="$flags -DGGML_AVX512=ON"
    if try vnni "-mavx512f -mavx512vnni" \
        '__m512i a = _mm512_set1_epi32(one); a = _mm512_dpbusd_epi32(a, a, a); sink = _mm512_reduce_add_epi32(a);' avx512_vnni
    then
        flags="$flags -DGGML_AVX512_VNNI=ON"
    fi
    if try bf16 "-mavx512f -mavx512bf16" \
        '__m512 f = _mm512_set1_ps((float)one); __m512bh b = _mm512_cvtne2ps_pbh(f, f);
         f = _mm512_dpbf16_ps(f, b, b); sink = (int)_mm512_reduce_add_ps(f);' avx512_bf16
    then
        flags="$flags -DGGML_AVX512_BF16=ON"
    fi
fi
if try bmi2 "-mbmi2" 'sink = (int)_pdep_u32((unsigned)one * 0x5u, 0xf0u);' bmi2
then
    flags="$flags -DGGML_BMI2=ON"
fi
if try avxvnni "-mavxvnni" \
    '__m256i a = _mm256_set1_epi32(one); a = _mm256_dpbusd_avx_epi32(a, a, a); sink = _mm256_extract_epi32(a, 0);' avx_vnni
then
    flags="$flags -DGGML_AVX_VNNI=ON"
fi
echo "$flags"
