/*
 * bench_gemm.h — pandagpt-bench --gemm (bench_gemm.c): the CPU batched matmul op alone.
 */
#ifndef PG_BENCH_GEMM_H
#define PG_BENCH_GEMM_H

#include "backend/cpu/gemm.h"

/* Times the CPU backend's matmul at the encoder's and prefill's shapes on 1..max_threads
 * threads with the given GEMM kernel, printing GFLOP/s next to the FMA peak; 0 on success. */
int gemm_bench(int max_threads, pg_gemm_kernel kernel);

#endif
