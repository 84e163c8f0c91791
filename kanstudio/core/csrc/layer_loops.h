/* The per-sample loops of layer.c. layer.c includes this file once per instruction set it
 * builds (plain, and AVX2 + FMA on x86-64 with GCC) and picks one at run time: LOOPS(name)
 * gives each copy its own names, VW is its vector width in doubles. */
#define vec LOOPS(vec)
#define ivec LOOPS(ivec)
#define v4 LOOPS(v4)
#define span_basis LOOPS(span_basis)
#define vsign LOOPS(vsign)
#define silu_at LOOPS(silu_at)
#define sign_of LOOPS(sign_of)
#define vload LOOPS(vload)
#define vstore LOOPS(vstore)
#define vabs LOOPS(vabs)
#define vexp LOOPS(vexp)
#define fwd_basis LOOPS(fwd_basis)
#define bwd_body LOOPS(bwd_body)
#define fwd_body LOOPS(fwd_body)
#define fwd_run LOOPS(fwd_run)
#define bwd_run LOOPS(bwd_run)

#define REAL double
#define REAL_BITS 64
typedef double vec __attribute__((vector_size(VW * sizeof(double))));
typedef long long ivec __attribute__((vector_size(VW * sizeof(double))));
typedef double v4 __attribute__((vector_size(4 * sizeof(double))));

static inline vec vload(const double *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(double *p, vec v) { memcpy(p, &v, sizeof v); }

/* The passes take k as an argument of always-inlined bodies, and the runners call them with a
 * literal 3 for cubic splines (the default): with k known, the loops over the k + 1 basis
 * functions unroll into straight-line vector code. */
#define INLINE static inline __attribute__((always_inline))

#include "vec_math.h"
#include "span_basis.h"

/* silu(x) = x sigmoid(x) and its derivative sigmoid(x) (1 + x (1 - sigmoid(x))) */
static inline void silu_at(double x, double *v, double *d) {
    double sig = 1.0 / (1.0 + exp(-x));
    *v = x * sig;
    if (d) *d = sig * (1.0 + x * (1.0 - sig));
}

/* sign(a) without branches: the signs of a layer's activations are close to random, and a
 * mispredicted branch per (sample, edge) cost more than the rest of the penalty. (NaN gives 0;
 * the loss is NaN then anyway, and training rolls back.) */
static inline double sign_of(double a) { return (double)((a > 0.0) - (a < 0.0)); }

/* Outputs are handled in blocks of OB = VW: a block's accumulators are one vector, which stays
 * in registers. (With loops over a run-time number of outputs they lived in memory, and each
 * sample waited on the previous one's store: ~4x slower.) Weights and weight gradients are
 * padded with zeros to oP outputs, a multiple of OB (layer.c). */
#define OB VW

/* The basis of every (sample, input) of the thread's samples: silu first, VW inputs at a time
 * (the samples' inputs are contiguous in H), then the splines one by one. */
INLINE void fwd_basis(fwd_job *J, int k) {
    int n = J->n, K = J->K, R = k + 2;
    size_t q = (size_t)J->b0 * n, q1 = (size_t)J->b1 * n;
    double *V = J->V + k + 1, *DV = J->DV ? J->DV + k + 1 : NULL;
    for (; q + VW <= q1; q += VW) {
        vec x = vload(J->H + q);
        vec sig = 1.0 / (1.0 + vexp(-x)), s = x * sig, ds = sig * (1.0 + x * (1.0 - sig));
        for (int l = 0; l < VW; l++) {
            V[(q + l) * R] = s[l];
            if (DV) DV[(q + l) * R] = ds[l];
        }
    }
    for (; q < q1; q++) silu_at(J->H[q], V + q * R, DV ? DV + q * R : NULL);
    for (int b = J->b0; b < J->b1; b++)
        for (int i = 0; i < n; i++) {
            const double *t = J->T + (size_t)i * K, *tb = J->TAB + (size_t)i * (K + 1) * (k + 1) * (k + 1);
            size_t ib = (size_t)b * n + i;
            double *v = J->V + ib * R, *d = J->DV ? J->DV + ib * R : NULL;
            J->I[ib] = span_basis(t, K, k, tb, J->ST + (size_t)i * (K + 1), J->START + (size_t)i * (K + 1), J->H[ib], v, d);
        }
}

/* Samples outer, inputs inner: a sample's outputs are summed in registers over the inputs and
 * stored once; mag (per thread, (n, oP)) is touched by a sample only every n updates. */
INLINE void fwd_body(fwd_job *J, int k) {
    int n = J->n, o = J->o, oP = J->oP, nb = J->nb, R = k + 2;
    size_t WI = (size_t)(nb + 1) * oP;
    if (J->compute) fwd_basis(J, k);
    memset(J->mag, 0, sizeof(double) * (size_t)n * oP);
    const double *V = J->V, *W = J->W;
    const int *I = J->I;
    double *mag = J->mag, *A = J->A;
    if (o == 1) {  /* one output (the last layer): scalars */
        for (int b = J->b0; b < J->b1; b++) {
            double y = 0.0;
            for (int i = 0; i < n; i++) {
                size_t ib = (size_t)b * n + i;
                const double *v = V + ib * R, *Wi = W + i * WI, *w = Wi + I[ib];
                double a = v[k + 1] * Wi[nb];
                for (int r = 0; r <= k; r++) a += v[r] * w[r];
                mag[i] += fabs(a);
                if (A) A[ib] = a;
                y += a;
            }
            J->Y[b] = J->NS[0] * y + J->BI[0];
        }
        return;
    }
    for (int b = J->b0; b < J->b1; b++)
        for (int jb = 0; jb < oP; jb += OB) {
            int qn = o - jb < OB ? o - jb : OB;
            vec y = {0.0};
            for (int i = 0; i < n; i++) {
                size_t ib = (size_t)b * n + i;
                const double *v = V + ib * R, *Wi = W + i * WI + jb;
                const double *w0 = Wi + (size_t)I[ib] * oP;
                vec a = v[k + 1] * vload(Wi + (size_t)nb * oP);
                for (int r = 0; r <= k; r++) a += v[r] * vload(w0 + (size_t)r * oP);
                double *m = mag + (size_t)i * oP + jb;
                vstore(m, vload(m) + vabs(a));
                y += a;
                if (A)
                    for (int q = 0; q < qn; q++) A[ib * o + jb + q] = a[q];
            }
            for (int q = 0; q < qn; q++) J->Y[(size_t)b * o + jb + q] = J->NS[jb + q] * y[q] + J->BI[jb + q];
        }
}

static void *fwd_run(void *arg) {
    fwd_job *J = arg;
    if (J->k == 3) fwd_body(J, 3);
    else fwd_body(J, J->k);
    return NULL;
}

INLINE void bwd_body(bwd_job *J, int k) {
    int n = J->n, o = J->o, oP = J->oP, nb = J->nb, R = k + 2;
    size_t WI = (size_t)(nb + 1) * oP;
    memset(J->GW, 0, sizeof(double) * (size_t)n * WI);
    const double *V = J->V, *DV = J->DV, *W = J->W, *A = J->A, *rr = J->rr, *DA = J->DA;
    const int *I = J->I;
    double *GW = J->GW, *GX = J->GX;
    if (o == 1) {  /* one output: scalars */
        for (int b = J->b0; b < J->b1; b++) {
            double gy = J->GY[b];
            for (int i = 0; i < n; i++) {
                size_t ib = (size_t)b * n + i;
                double gb = DA ? DA[ib] : gy;
                if (rr) gb += rr[i] * sign_of(A[ib]);
                const double *v = V + ib * R;
                int j0 = I[ib];
                double *GWi = GW + i * WI, *gw = GWi + j0;
                GWi[nb] += v[k + 1] * gb;
                for (int r = 0; r <= k; r++) gw[r] += v[r] * gb;
                if (GX) {
                    const double *d = DV + ib * R, *Wi = W + i * WI, *w = Wi + j0;
                    double acc = Wi[nb] * d[k + 1];
                    for (int r = 0; r <= k; r++) acc += w[r] * d[r];
                    GX[(size_t)b * n + i] = gb * acc;
                }
            }
        }
        return;
    }
    double *g = J->g;  /* this edge's output gradients, padded with zeros to oP */
    for (int q = o; q < oP; q++) g[q] = 0.0;
    for (int b = J->b0; b < J->b1; b++) {
        const double *gy = J->GY + (size_t)b * o;
        for (int i = 0; i < n; i++) {
            size_t ib = (size_t)b * n + i;
            if (DA) {
                for (int j = 0; j < o; j++) g[j] = DA[ib * o + j];
            } else if (rr) {
                const double *a = A + ib * o, *ri = rr + (size_t)i * o;
                for (int j = 0; j < o; j++) g[j] = gy[j] + ri[j] * sign_of(a[j]);
            } else if (i == 0) {  /* the same for every input */
                for (int j = 0; j < o; j++) g[j] = gy[j];
            }
            const double *v = V + ib * R;
            int j0 = I[ib];
            double s = v[k + 1];
            double *GWi = GW + i * WI;
            const double *Wi = W + i * WI, *d = GX ? DV + ib * R : NULL;
            vec t = {0.0};
            for (int jb = 0; jb < oP; jb += OB) {
                vec gj = vload(g + jb);
                double *gws = GWi + (size_t)nb * oP + jb, *gw0 = GWi + (size_t)j0 * oP + jb;
                vstore(gws, vload(gws) + s * gj);
                for (int r = 0; r <= k; r++) {
                    double *gw = gw0 + (size_t)r * oP;
                    vstore(gw, vload(gw) + v[r] * gj);
                }
                if (d) {  /* d phi / dx . g, all outputs at once */
                    const double *w0 = Wi + (size_t)j0 * oP + jb;
                    vec u = d[k + 1] * vload(Wi + (size_t)nb * oP + jb);
                    for (int r = 0; r <= k; r++) u += d[r] * vload(w0 + (size_t)r * oP);
                    t += u * gj;
                }
            }
            if (GX) {
                double acc = 0.0;
                for (int q = 0; q < OB; q++) acc += t[q];
                GX[(size_t)b * n + i] = acc;
            }
        }
    }
}

static void *bwd_run(void *arg) {
    bwd_job *J = arg;
    if (J->k == 3) bwd_body(J, 3);
    else bwd_body(J, J->k);
    return NULL;
}

#undef vec
#undef ivec
#undef v4
#undef span_basis
#undef vsign
#undef REAL
#undef REAL_BITS
#undef silu_at
#undef sign_of
#undef vload
#undef vstore
#undef vabs
#undef vexp
#undef fwd_basis
#undef fwd_body
#undef bwd_body
#undef fwd_run
#undef bwd_run
#undef OB
#undef INLINE
