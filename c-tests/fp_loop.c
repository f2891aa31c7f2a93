/*
 * fp_loop.c - floating-point register state (SSE, AVX/YMM, x87, MXCSR).
 *
 * Pacing is pure computation: no system call inside the compute loops, so
 * a checkpoint signal lands on arbitrary FP instructions with live values in
 * XMM/YMM/x87 registers. The values are chaotic (logistic maps), so any bit
 * lost in the restore grows until the digest, which hashes the exact bit
 * patterns, changes.
 *
 * Only + - * / are used (no libm), and x86_64 without -mfma never contracts
 * a*b+c, so the results are bit-for-bit reproducible. The vector part runs
 * with MXCSR set to round-toward-zero; a restore that loses MXCSR changes
 * the results too. The AVX2 path and the scalar fallback (CPUs without AVX2)
 * perform the same IEEE operations in the same order, so both give the
 * same digest.
 */
#include "common.h"

#include <immintrin.h>

/* Iterations per step, calibrated for ~50 ms per step on a ~3 GHz x86_64. */
#define SCALAR_ITERS 5000000L
#define VECTOR_ITERS 4000000L

#define MXCSR_ROUND_MASK 0x6000u
#define MXCSR_ROUND_TOWARD_ZERO 0x6000u

struct fpstate {
    double x[4];      /* scalar logistic maps (XMM) */
    double cx, cy;    /* rotating unit vector, renormalised each iteration */
    float f[4];       /* single-precision filters */
    long double ld;   /* x87 accumulator */
    double vx[4];     /* vector logistic maps (YMM) */
    uint64_t mix[4];  /* integer lanes mixing the vector bits (AVX2) */
};

static const double R[4] = { 3.90, 3.93, 3.97, 3.99 };
static const double VR[4] = { 3.91, 3.95, 3.98, 3.999 };

__attribute__((noinline))
static void scalar_part(struct fpstate *s, long iters)
{
    /* Everything lives in registers for the whole loop. */
    double x0 = s->x[0], x1 = s->x[1], x2 = s->x[2], x3 = s->x[3];
    double cx = s->cx, cy = s->cy;
    float f0 = s->f[0], f1 = s->f[1], f2 = s->f[2], f3 = s->f[3];
    long double ld = s->ld;
    const double c = 0.9998000066665778, sn = 0.019998666693333080; /* ~cos/sin(0.02) */

    for (long i = 0; i < iters; i++) {
        x0 = R[0] * x0 * (1.0 - x0);
        x1 = R[1] * x1 * (1.0 - x1);
        x2 = R[2] * x2 * (1.0 - x2);
        x3 = R[3] * x3 * (1.0 - x3);

        double t = c * cx - sn * cy;
        cy = sn * cx + c * cy;
        cx = t;
        double k = 1.5 - 0.5 * (cx * cx + cy * cy); /* Newton step for 1/|v| */
        cx *= k;
        cy *= k;

        f0 = f0 * 0.75f + (float)x0 * 0.25f;
        f1 = f1 * 0.5f + (float)(x1 * cx);
        f2 = (f2 + (float)x2) / (1.0f + f0);
        f3 = f3 * 0.9375f + f1 * f2;

        ld = ld * 0.999L + (long double)x3 / 3.0L;
    }

    s->x[0] = x0; s->x[1] = x1; s->x[2] = x2; s->x[3] = x3;
    s->cx = cx; s->cy = cy;
    s->f[0] = f0; s->f[1] = f1; s->f[2] = f2; s->f[3] = f3;
    s->ld = ld;
}

__attribute__((noinline, target("avx2")))
static void vector_part_avx2(struct fpstate *s, long iters)
{
    __m256d x = _mm256_loadu_pd(s->vx);
    const __m256d r = _mm256_loadu_pd(VR), one = _mm256_set1_pd(1.0);
    __m256i m = _mm256_loadu_si256((const __m256i *)s->mix);

    for (long i = 0; i < iters; i++) {
        x = _mm256_mul_pd(_mm256_mul_pd(r, x), _mm256_sub_pd(one, x));
        /* m = (m ^ bits(x)) + (m << 1) */
        m = _mm256_add_epi64(_mm256_xor_si256(m, _mm256_castpd_si256(x)),
                             _mm256_slli_epi64(m, 1));
    }

    _mm256_storeu_pd(s->vx, x);
    _mm256_storeu_si256((__m256i *)s->mix, m);
}

/* Same operations, lane by lane, for CPUs without AVX2. */
__attribute__((noinline))
static void vector_part_scalar(struct fpstate *s, long iters)
{
    for (int l = 0; l < 4; l++) {
        double x = s->vx[l];
        uint64_t m = s->mix[l];
        for (long i = 0; i < iters; i++) {
            x = VR[l] * x * (1.0 - x);
            uint64_t bits;
            memcpy(&bits, &x, sizeof bits);
            m = (m ^ bits) + (m << 1);
        }
        s->vx[l] = x;
        s->mix[l] = m;
    }
}

static uint64_t digest(const struct fpstate *s)
{
    uint64_t h = FNV_OFFSET;
    h = fnv1a(h, s->x, sizeof s->x);
    h = fnv1a(h, &s->cx, sizeof s->cx);
    h = fnv1a(h, &s->cy, sizeof s->cy);
    h = fnv1a(h, s->f, sizeof s->f);
    h = fnv1a(h, &s->ld, 10); /* 80-bit value; the remaining 6 bytes are padding */
    h = fnv1a(h, s->vx, sizeof s->vx);
    h = fnv1a(h, s->mix, sizeof s->mix);
    return h;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
#ifdef FP_LOOP_FORCE_SCALAR /* testing aid: check the fallback gives the same digests */
    int have_avx2 = 0;
#else
    int have_avx2 = __builtin_cpu_supports("avx2");
#endif
    struct fpstate s = {
        .x = { 0.1, 0.2, 0.3, 0.4 },
        .cx = 1.0, .cy = 0.0,
        .f = { 0.5f, 0.25f, 0.125f, 1.0f },
        .ld = 1.0L,
        .vx = { 0.11, 0.22, 0.33, 0.44 },
        .mix = { 1, 2, 3, 4 },
    };
    uint64_t chain = FNV_OFFSET;

    for (int step = 1; step <= steps; step++) {
        scalar_part(&s, SCALAR_ITERS);

        unsigned int csr = _mm_getcsr();
        _mm_setcsr((csr & ~MXCSR_ROUND_MASK) | MXCSR_ROUND_TOWARD_ZERO);
        if (have_avx2)
            vector_part_avx2(&s, VECTOR_ITERS);
        else
            vector_part_scalar(&s, VECTOR_ITERS);
        _mm_setcsr(csr);

        uint64_t d = digest(&s);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}
