/* The chunked loops of edge_sum.c. edge_sum.c includes this file once per (element type,
 * instruction set): REAL_BITS 32 (float) or 64 (double), VW the vector width in elements,
 * LOOPS(name) gives each copy its own names; all three are #undef'd at the end. */
#if REAL_BITS == 32
#define REAL float
#define IREAL int
#else
#define REAL double
#define IREAL long long
#endif
#define vec LOOPS(vec)
#define ivec LOOPS(ivec)
#define v4 LOOPS(v4)
#define vload LOOPS(vload)
#define vstore LOOPS(vstore)
#define vexp LOOPS(vexp)
#define vabs LOOPS(vabs)
#define vsign LOOPS(vsign)
#define span_basis LOOPS(span_basis)
#define silu1 LOOPS(silu1)
#define chunk_basis LOOPS(chunk_basis)
#define fwd_body LOOPS(fwd_body)
#define bwd_body LOOPS(bwd_body)
#define fwd_run LOOPS(fwd_run)
#define bwd_run LOOPS(bwd_run)

typedef REAL vec __attribute__((vector_size(VW * sizeof(REAL))));
typedef IREAL ivec __attribute__((vector_size(VW * sizeof(REAL))));
typedef REAL v4 __attribute__((vector_size(4 * sizeof(REAL))));

#define INLINE static inline __attribute__((always_inline))
#define C_(x) ((REAL)(x))

static inline vec vload(const REAL *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(REAL *p, vec v) { memcpy(p, &v, sizeof v); }

#include "vec_math.h"
#include "span_basis.h"

static inline void silu1(REAL x, REAL *v, REAL *d) {
    REAL sig = C_(1.0 / (1.0 + exp(-(double)x)));
    *v = x * sig;
    if (d) *d = sig * (1 + x * (1 - sig));
}

/* The basis of input i for the chunk's cb samples from sample b0: per sample q, c0[q] (the
 * first of the k + 1 functions of its span) and v[q * (k+2) + r], the k + 1 values then silu;
 * d the same for d/dx (when not NULL): silu VW samples at a time, the splines by span_basis. */
INLINE void chunk_basis(const es_job *J, int i, int b0, int cb, int k, int *c0, REAL *xs, REAL *v, REAL *d) {
    const int n = J->n, K = J->K, R1 = k + 1, R = k + 2;
    const REAL *X = (const REAL *)J->X + (size_t)b0 * n + i;
    const REAL *t = (const REAL *)J->T + (size_t)i * K;
    const REAL *tab = (const REAL *)J->TAB + (size_t)i * (K + 1) * R1 * R1;
    const REAL *st = (const REAL *)J->ST + (size_t)i * (K + 1);
    const int *start = J->START + (size_t)i * (K + 1);
    for (int q = 0; q < cb; q++) xs[q] = X[(size_t)q * n];
    int q = 0;
    for (; q + VW <= cb; q += VW) {
        vec x = vload(xs + q);
        vec sig = 1 / (1 + vexp(-x)), s = x * sig;
        vec ds = sig * (1 + x * (1 - sig));
        for (int l = 0; l < VW; l++) {
            v[(q + l) * R + R1] = s[l];
            if (d) d[(q + l) * R + R1] = ds[l];
        }
    }
    for (; q < cb; q++) silu1(xs[q], v + q * R + R1, d ? d + q * R + R1 : NULL);
    for (q = 0; q < cb; q++)
        c0[q] = span_basis(t, K, k, tab, st, start, xs[q], v + q * R, d ? d + q * R : NULL);
}

/* Forward: Y[b] = sum_i a[b,i] with the edge activations a[b,i] = sum_r v[b,i,r] W[i][c0 + r]
 * + silu(x_bi) W[i][nb]; with_mag, MAG[i] (the job's, n x oP) += |a[b,i]| too. The chunk's
 * outputs (cb x oP) are summed in memory that stays in L1 while one input's weights
 * ((nb + 1) x oP) are read for every sample of the chunk. */
INLINE void fwd_body(es_job *J, int k, int with_mag) {
    const int n = J->n, o = J->o, oP = J->oP, nb = J->nb, R = k + 2, CB = J->CB;
    const size_t WI = (size_t)(nb + 1) * oP;
    const REAL *W = (const REAL *)J->Wp;
    REAL *Y = (REAL *)J->OUT, *acc = (REAL *)J->scratch, *MAG = (REAL *)J->MAG;
    REAL *v = acc + (size_t)CB * oP, *xs = v + (size_t)CB * R;
    int *c0 = (int *)(xs + CB);
    if (with_mag) memset(MAG, 0, sizeof(REAL) * (size_t)n * oP);
    for (int b0 = J->b0; b0 < J->b1; b0 += CB) {
        int cb = J->b1 - b0 < CB ? J->b1 - b0 : CB;
        memset(acc, 0, sizeof(REAL) * (size_t)cb * oP);
        for (int i = 0; i < n; i++) {
            chunk_basis(J, i, b0, cb, k, c0, xs, v, NULL);
            const REAL *Wi = W + i * WI, *ws = Wi + (size_t)nb * oP;
            REAL *mi = with_mag ? MAG + (size_t)i * oP : NULL;
            for (int q = 0; q < cb; q++) {
                const REAL *w0 = Wi + (size_t)c0[q] * oP;
                REAL *restrict a = acc + (size_t)q * oP;
                vec vb[R];  /* the sample's values, broadcast once (stores to acc could alias v) */
                for (int r = 0; r < R; r++) vb[r] = (vec){0} + v[q * R + r];
                for (int jb = 0; jb < oP; jb += VW) {
                    if (with_mag) {  /* the edge activations on their own, then their sum */
                        vec e = vb[k + 1] * vload(ws + jb);
                        for (int r = 0; r <= k; r++) e += vb[r] * vload(w0 + (size_t)r * oP + jb);
                        vstore(a + jb, vload(a + jb) + e);
                        vstore(mi + jb, vload(mi + jb) + vabs(e));
                        continue;
                    }
                    vec s = vload(a + jb) + vb[k + 1] * vload(ws + jb);
                    for (int r = 0; r <= k; r++) s += vb[r] * vload(w0 + (size_t)r * oP + jb);
                    vstore(a + jb, s);
                }
            }
        }
        for (int q = 0; q < cb; q++) memcpy(Y + (size_t)(b0 + q) * o, acc + (size_t)q * oP, sizeof(REAL) * o);
    }
}

static void *fwd_run(void *arg) {
    es_job *J = arg;
    int mag = J->MAG != NULL;
    if (J->k == 3) mag ? fwd_body(J, 3, 1) : fwd_body(J, 3, 0);
    else mag ? fwd_body(J, J->k, 1) : fwd_body(J, J->k, 0);
    return NULL;
}

/* Backward, from each edge's gradient g = gY[b] (with_r: + RM[i] sign(a[b,i]), the penalty's
 * share, a recomputed): the job's weight gradient GW[i][c0 + r] += v[r] g (and GW[i][nb] for
 * silu) and, with_gx, gx[b, i] = g . (sum_r d[r] W[i][c0 + r] + dsilu W[i][nb]), per chunk and
 * input like the forward, so one input's weights and gradient rows stay in L1. */
INLINE void bwd_body(es_job *J, int k, int with_gx, int with_r) {
    const int n = J->n, o = J->o, oP = J->oP, nb = J->nb, R = k + 2, CB = J->CB;
    const size_t WI = (size_t)(nb + 1) * oP;
    const REAL *W = (const REAL *)J->Wp, *GY = (const REAL *)J->GY;
    REAL *GW = (REAL *)J->GW, *GX = (REAL *)J->GX, *gP = (REAL *)J->scratch;
    REAL *v = gP + (size_t)CB * oP, *xs = v + (size_t)CB * R, *d = xs + CB;
    int *c0 = (int *)(d + (size_t)CB * R);
    memset(GW, 0, sizeof(REAL) * n * WI);
    for (int b0 = J->b0; b0 < J->b1; b0 += CB) {
        int cb = J->b1 - b0 < CB ? J->b1 - b0 : CB;
        for (int q = 0; q < cb; q++) {  /* the chunk's output gradients, padded with zeros to oP */
            REAL *g = gP + (size_t)q * oP;
            memcpy(g, GY + (size_t)(b0 + q) * o, sizeof(REAL) * o);
            for (int j = o; j < oP; j++) g[j] = 0;
        }
        for (int i = 0; i < n; i++) {
            chunk_basis(J, i, b0, cb, k, c0, xs, v, with_gx ? d : NULL);
            const REAL *Wi = W + i * WI, *ws = Wi + (size_t)nb * oP;
            const REAL *ri = with_r ? (const REAL *)J->RM + (size_t)i * oP : NULL;
            REAL *GWi = GW + i * WI, *gs = GWi + (size_t)nb * oP;
            for (int q = 0; q < cb; q++) {
                const REAL *g = gP + (size_t)q * oP;
                const REAL *w0 = Wi + (size_t)c0[q] * oP;
                REAL *restrict gw0 = GWi + (size_t)c0[q] * oP;
                vec vb[R], db[R];  /* broadcast once: the stores to GW could alias v and d */
                for (int r = 0; r < R; r++) {
                    vb[r] = (vec){0} + v[q * R + r];
                    db[r] = with_gx ? (vec){0} + d[q * R + r] : (vec){0};
                }
                vec t = {0};
                for (int jb = 0; jb < oP; jb += VW) {
                    vec gj = vload(g + jb);
                    if (with_r) {
                        vec e = vb[k + 1] * vload(ws + jb);
                        for (int r = 0; r <= k; r++) e += vb[r] * vload(w0 + (size_t)r * oP + jb);
                        gj += vload(ri + jb) * vsign(e);
                    }
                    vstore(gs + jb, vload(gs + jb) + vb[k + 1] * gj);
                    for (int r = 0; r <= k; r++) {
                        REAL *gw = gw0 + (size_t)r * oP + jb;
                        vstore(gw, vload(gw) + vb[r] * gj);
                    }
                    if (with_gx) {
                        vec u = db[k + 1] * vload(ws + jb);
                        for (int r = 0; r <= k; r++) u += db[r] * vload(w0 + (size_t)r * oP + jb);
                        t += u * gj;
                    }
                }
                if (with_gx) {
                    REAL acc = 0;
                    for (int l = 0; l < VW; l++) acc += t[l];
                    GX[(size_t)(b0 + q) * n + i] = acc;
                }
            }
        }
    }
}

#define BWD_CASES(k)                                                                        \
    (gx ? (rm ? bwd_body(J, k, 1, 1) : bwd_body(J, k, 1, 0)) : (rm ? bwd_body(J, k, 0, 1) : bwd_body(J, k, 0, 0)))
static void *bwd_run(void *arg) {
    es_job *J = arg;
    int gx = J->GX != NULL, rm = J->RM != NULL;
    if (J->k == 3) BWD_CASES(3);
    else BWD_CASES(J->k);
    return NULL;
}
#undef BWD_CASES

#undef vec
#undef ivec
#undef v4
#undef vload
#undef vstore
#undef vexp
#undef vabs
#undef vsign
#undef silu1
#undef chunk_basis
#undef fwd_body
#undef bwd_body
#undef fwd_run
#undef bwd_run
#undef INLINE
#undef C_
#undef span_basis
#undef REAL
#undef IREAL
#undef REAL_BITS
#undef VW
#undef LOOPS
