/* One plain-spline KAN layer of the training objective (objective.py), forward and backward,
 * float64: one pass over (sample, input, output) that touches only the k + 1 nonzero basis
 * functions of each sample, threaded over sample ranges, GIL released.
 *
 * Shapes (all C-contiguous float64 unless said): layer input h (B, n), knots (n, K), coef
 * (n, o, nb) with nb = K - k - 1, per-edge scale_base / scale_sp / mask (n, o), node_scale and
 * bias (o). Per-sample basis cache, sample-major like everything per (sample, input): first
 * function index idx (B, n) int32 and values vals (B, n, k + 2): the k + 1 B-splines of the
 * sample's span, then silu(x); dvals the same for d/dx. Edge activations A and their gradients
 * dA are (B, n, o). (Input-major, the loops over samples read 3n streams far apart; the
 * hardware prefetchers lost track and the passes ran ~2x slower.) */
#include "kernels.h"
/* ---- one layer: the per-sample loops, on a range of samples ------------------------------ */

typedef struct {
    int n, B, o, oP, K, k, nb, compute, b0, b1;
    const double *H, *T, *TAB, *ST, *W, *NS, *BI;
    const int *START;
    double *Y, *A, *V, *DV, *mag;
    int *I;
} fwd_job;

typedef struct {
    int n, B, o, oP, k, nb, b0, b1;
    const double *GY, *A, *rr, *V, *DV, *W, *DA;
    const int *I;
    double *GW, *GX, *g;
} bwd_job;

/* Samples outer, inputs inner, like fwd_run: the gradient rows of input i are touched by a
 * sample only every n updates, so no update waits on the previous one's store. */
#define LOOPS(name) name##_generic
#define VW 2
#include "layer_loops.h"
#undef LOOPS
#undef VW

#ifdef HAVE_AVX2_LOOPS
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define LOOPS(name) name##_avx2
#define VW 4
#include "layer_loops.h"
#undef LOOPS
#undef VW
#pragma GCC pop_options
#endif

typedef struct {
    void *(*fwd)(void *), *(*bwd)(void *);
    int ob;  /* the loops' block of outputs */
    const char *name;
} loops;

static const loops generic_loops = {fwd_run_generic, bwd_run_generic, 2, "generic"};
#ifdef HAVE_AVX2_LOOPS
static const loops avx2_loops = {fwd_run_avx2, bwd_run_avx2, 4, "avx2"};
#endif
static const loops *chosen;

static const loops *best_loops(void) {
#ifdef HAVE_AVX2_LOOPS
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &avx2_loops;
#endif
    return &generic_loops;
}

static const loops *current_loops(void) {
    if (!chosen) chosen = best_loops();
    return chosen;
}

int loops_are_avx2(void) {
#ifdef HAVE_AVX2_LOOPS
    return current_loops() == &avx2_loops;
#else
    return 0;
#endif
}

/* isa() -> the name of the loops in use; isa(name) switches ("generic", "avx2" where built and
 * supported, "auto"): the tests run both against autograd. */
PyObject *layer_isa(PyObject *self, PyObject *args) {
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|s", &name)) return NULL;
    if (name) {
        if (!strcmp(name, "auto")) chosen = best_loops();
        else if (!strcmp(name, "generic")) chosen = &generic_loops;
#ifdef HAVE_AVX2_LOOPS
        else if (!strcmp(name, "avx2") && best_loops() == &avx2_loops) chosen = &avx2_loops;
#endif
        else return PyErr_Format(PyExc_ValueError, "_kernels: no %s loops on this machine", name);
    }
    return PyUnicode_FromString(current_loops()->name);
}

/* Each thread's accumulators start on a cache line of their own: two threads adding into one
 * line make the cores pass it back and forth on every update. */
#define LINE 128
static inline size_t lines_of(size_t doubles) { return (doubles + LINE / 8 - 1) / (LINE / 8) * (LINE / 8); }

static inline int padded_outputs(int o, int ob) { return o == 1 ? 1 : (o + ob - 1) / ob * ob; }

/* Effective weights, output-minor so the loops over outputs are contiguous: W[i][q][j] =
 * mask * scale_sp * coef[i][j][q] for the nb spline functions q, W[i][nb][j] = mask *
 * scale_base for silu, and 0 for the padding outputs j = o..oP-1. */
static void effective_weights(int n, int o, int oP, int nb, const double *C, const double *SB, const double *SP,
                              const double *MK, double *W) {
    memset(W, 0, sizeof(double) * (size_t)n * (nb + 1) * oP);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < o; j++) {
            size_t e = (size_t)i * o + j;
            double *w = W + (size_t)i * (nb + 1) * oP + j;
            double f = MK[e] * SP[e];
            for (int q = 0; q < nb; q++) w[(size_t)q * oP] = f * C[e * nb + q];
            w[(size_t)nb * oP] = MK[e] * SB[e];
        }
}

/* ---- one layer, forward ---------------------------------------------------------------- */

PyObject *layer_forward(PyObject *self, PyObject *args) {
    int n, B, o, K, k, compute_basis, nthreads;
    Py_buffer h, knots, tab, span_t, start, coef, sb, sp, mask, ns, bias, y, mag, idx, vals;
    PyObject *A_obj, *dv_obj;
    Py_buffer A_view, dv_view;
    double *A, *dv;
    if (!PyArg_ParseTuple(args, "iiiiiy*y*y*y*y*y*y*y*y*y*y*w*w*w*w*OOpi", &n, &B, &o, &K, &k, &h, &knots,
                          &tab, &span_t, &start, &coef, &sb, &sp, &mask, &ns, &bias, &y, &mag, &idx, &vals, &A_obj, &dv_obj,
                          &compute_basis, &nthreads))
        return NULL;
    PyObject *ret = NULL;
    int got_A = 0, got_dv = 0;
    if (!get_opt(A_obj, &A_view, 1, &A)) goto done;
    got_A = A != NULL;
    if (!get_opt(dv_obj, &dv_view, 1, &dv)) goto done;
    got_dv = dv != NULL;
    int nb = K - k - 1, R = k + 2;
    if (k < 1 || nb < 1) { PyErr_SetString(PyExc_ValueError, "_kernels: bad k or knots"); goto done; }
    Py_ssize_t D = sizeof(double);
    if (!check_len(&h, (Py_ssize_t)B * n, D, "h") || !check_len(&knots, (Py_ssize_t)n * K, D, "knots") ||
        !check_len(&tab, (Py_ssize_t)n * (K + 1) * (k + 1) * (k + 1), D, "tables") ||
        !check_len(&span_t, (Py_ssize_t)n * (K + 1), D, "span_t") ||
        !check_len(&start, (Py_ssize_t)n * (K + 1), sizeof(int), "start") ||
        !check_len(&coef, (Py_ssize_t)n * o * nb, D, "coef") || !check_len(&sb, (Py_ssize_t)n * o, D, "scale_base") ||
        !check_len(&sp, (Py_ssize_t)n * o, D, "scale_sp") || !check_len(&mask, (Py_ssize_t)n * o, D, "mask") ||
        !check_len(&ns, o, D, "node_scale") || !check_len(&bias, o, D, "bias") ||
        !check_len(&y, (Py_ssize_t)B * o, D, "y") || !check_len(&mag, (Py_ssize_t)n * o, D, "mag") ||
        !check_len(&idx, (Py_ssize_t)n * B, sizeof(int), "idx") ||
        !check_len(&vals, (Py_ssize_t)n * B * R, D, "vals") ||
        (got_A && !check_len(&A_view, (Py_ssize_t)n * B * o, D, "A")) ||
        (got_dv && !check_len(&dv_view, (Py_ssize_t)n * B * R, D, "dvals")))
        goto done;
    if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 1;
    {
        const loops *L = current_loops();
        int nt = nthreads, oP = padded_outputs(o, L->ob);
        size_t WN = lines_of((size_t)n * (nb + 1) * oP), MN = lines_of((size_t)n * oP);
        double *scratch = aligned_alloc(LINE, sizeof(double) * (WN + (size_t)nt * MN));
        if (!scratch) { PyErr_NoMemory(); goto done; }
        fwd_job jobs[MAXTHREADS];
        const double *C = coef.buf, *SB = sb.buf, *SP = sp.buf, *MK = mask.buf;
        double *W = scratch, *MAG = mag.buf;
        Py_BEGIN_ALLOW_THREADS
        effective_weights(n, o, oP, nb, C, SB, SP, MK, W);
        for (int t = 0; t < nt; t++) {
            fwd_job *J = &jobs[t];
            J->n = n; J->B = B; J->o = o; J->oP = oP; J->K = K; J->k = k; J->nb = nb;
            J->H = h.buf; J->T = knots.buf; J->TAB = tab.buf; J->ST = span_t.buf; J->START = start.buf;
            J->W = W; J->NS = ns.buf; J->BI = bias.buf;
            J->Y = y.buf; J->A = A; J->V = vals.buf; J->DV = dv; J->I = idx.buf;
            J->mag = scratch + WN + (size_t)t * MN;
            J->compute = compute_basis;
            J->b0 = (int)((long)B * t / nt); J->b1 = (int)((long)B * (t + 1) / nt);
        }
        run_jobs(L->fwd, jobs, sizeof(fwd_job), nt);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < o; j++) {
                double m = 0.0;
                for (int t = 0; t < nt; t++) m += jobs[t].mag[(size_t)i * oP + j];
                MAG[(size_t)i * o + j] = m / B;
            }
        Py_END_ALLOW_THREADS
        free(scratch);
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&h); PyBuffer_Release(&knots); PyBuffer_Release(&tab); PyBuffer_Release(&span_t);
    PyBuffer_Release(&start); PyBuffer_Release(&coef); PyBuffer_Release(&sb);
    PyBuffer_Release(&sp); PyBuffer_Release(&mask); PyBuffer_Release(&ns); PyBuffer_Release(&bias);
    PyBuffer_Release(&y); PyBuffer_Release(&mag); PyBuffer_Release(&idx); PyBuffer_Release(&vals);
    if (got_A) PyBuffer_Release(&A_view);
    if (got_dv) PyBuffer_Release(&dv_view);
    return ret;
}

/* ---- one layer, backward --------------------------------------------------------------- */

/* g_out (B, o): d loss / d (layer output). Each edge activation gets g_out * node_scale plus,
 * when r is given, r[i, j] * sign(A[b, i, j]) (the penalty's share) -- or, when dA (B, n, o)
 * is given (layers with product nodes), exactly dA. The gradients of coef,
 * scale_sp, scale_base and bias go into the flat gradient at the given offsets (-1: not
 * trained); gy (B, o) is scratch. gx (B, n), when given,
 * gets the gradient of the layer input. */
PyObject *layer_backward(PyObject *self, PyObject *args) {
    int n, B, o, K, k, nthreads;
    Py_ssize_t off_coef, off_sp, off_sb, off_bias;
    Py_buffer gout, ns, coef, sb, sp, mask, idx, vals, gy, flat;
    PyObject *A_obj, *r_obj, *dv_obj, *gx_obj, *dA_obj;
    Py_buffer A_view, r_view, dv_view, gx_view, dA_view;
    double *A, *rr, *dv, *gx, *dA;
    if (!PyArg_ParseTuple(args, "iiiiiy*y*y*y*y*y*y*y*w*nnnnOOOOOiw*", &n, &B, &o, &K, &k, &gout, &ns,
                          &coef, &sb, &sp, &mask, &idx, &vals, &gy, &off_coef, &off_sp, &off_sb,
                          &off_bias, &A_obj, &r_obj, &dv_obj, &gx_obj, &dA_obj, &nthreads, &flat))
        return NULL;
    PyObject *ret = NULL;
    int got_A = 0, got_r = 0, got_dv = 0, got_gx = 0, got_dA = 0;
    if (!get_opt(A_obj, &A_view, 0, &A)) goto done;
    got_A = A != NULL;
    if (!get_opt(r_obj, &r_view, 0, &rr)) goto done;
    got_r = rr != NULL;
    if (!get_opt(dv_obj, &dv_view, 0, &dv)) goto done;
    got_dv = dv != NULL;
    if (!get_opt(gx_obj, &gx_view, 1, &gx)) goto done;
    got_gx = gx != NULL;
    if (!get_opt(dA_obj, &dA_view, 0, &dA)) goto done;
    got_dA = dA != NULL;
    int nb = K - k - 1, R = k + 2;
    if (k < 1 || nb < 1) { PyErr_SetString(PyExc_ValueError, "_kernels: bad k or knots"); goto done; }
    if ((rr != NULL && A == NULL) || (gx != NULL && dv == NULL)) {
        PyErr_SetString(PyExc_ValueError, "_kernels: r needs A, gx needs dvals");
        goto done;
    }
    Py_ssize_t D = sizeof(double), E = (Py_ssize_t)n * o, P = flat.len / D;
    if (!check_len(&gout, (Py_ssize_t)B * o, D, "g_out") || !check_len(&ns, o, D, "node_scale") ||
        !check_len(&coef, E * nb, D, "coef") ||
        !check_len(&sb, E, D, "scale_base") || !check_len(&sp, E, D, "scale_sp") || !check_len(&mask, E, D, "mask") ||
        !check_len(&idx, (Py_ssize_t)n * B, sizeof(int), "idx") || !check_len(&vals, (Py_ssize_t)n * B * R, D, "vals") ||
        !check_len(&gy, (Py_ssize_t)B * o, D, "gy") ||
        (got_A && !check_len(&A_view, (Py_ssize_t)n * B * o, D, "A")) || (got_r && !check_len(&r_view, E, D, "r")) ||
        (got_dv && !check_len(&dv_view, (Py_ssize_t)n * B * R, D, "dvals")) ||
        (got_gx && !check_len(&gx_view, (Py_ssize_t)B * n, D, "gx")) ||
        (got_dA && !check_len(&dA_view, (Py_ssize_t)n * B * o, D, "dA")))
        goto done;
    if (dA && rr) {
        PyErr_SetString(PyExc_ValueError, "_kernels: dA already holds the penalty's share; r must be None");
        goto done;
    }
    if ((off_coef >= 0 && off_coef + E * nb > P) || (off_sp >= 0 && off_sp + E > P) ||
        (off_sb >= 0 && off_sb + E > P) || (off_bias >= 0 && off_bias + o > P)) {
        PyErr_SetString(PyExc_ValueError, "_kernels: gradient offsets beyond the flat gradient");
        goto done;
    }
    if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 1;
    {
        const loops *L = current_loops();
        int nt = nthreads, oP = padded_outputs(o, L->ob);
        size_t WN = (size_t)n * (nb + 1) * oP, GN = lines_of(WN + oP);
        double *scratch = aligned_alloc(LINE, sizeof(double) * (lines_of(WN) + (size_t)nt * GN));
        if (!scratch) { PyErr_NoMemory(); goto done; }
        bwd_job jobs[MAXTHREADS];
        const double *GO = gout.buf, *NS = ns.buf, *C = coef.buf, *SB = sb.buf, *SP = sp.buf, *MK = mask.buf;
        double *W = scratch, *GY = gy.buf, *F = flat.buf;
        Py_BEGIN_ALLOW_THREADS
        effective_weights(n, o, oP, nb, C, SB, SP, MK, W);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < o; j++) GY[(size_t)b * o + j] = GO[(size_t)b * o + j] * NS[j];
        if (off_bias >= 0)
            for (int j = 0; j < o; j++) {
                double acc = 0.0;
                for (int b = 0; b < B; b++) acc += GO[(size_t)b * o + j];
                F[off_bias + j] = acc;
            }
        for (int t = 0; t < nt; t++) {
            bwd_job *J = &jobs[t];
            J->n = n; J->B = B; J->o = o; J->oP = oP; J->k = k; J->nb = nb;
            J->GY = GY; J->A = A; J->rr = rr; J->DA = dA; J->V = vals.buf; J->DV = dv; J->I = idx.buf; J->W = W;
            J->GW = scratch + lines_of(WN) + (size_t)t * GN;
            J->g = J->GW + WN;
            J->GX = gx;
            J->b0 = (int)((long)B * t / nt); J->b1 = (int)((long)B * (t + 1) / nt);
        }
        run_jobs(L->bwd, jobs, sizeof(bwd_job), nt);
        double *GW = jobs[0].GW;  /* d / d(effective weight), (n, nb + 1, oP), summed over threads */
        for (int t = 1; t < nt; t++)
            for (size_t q = 0; q < WN; q++) GW[q] += jobs[t].GW[q];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < o; j++) {
                size_t e = (size_t)i * o + j;
                const double *c = C + e * nb, *g = GW + (size_t)i * (nb + 1) * oP + j;
                double m = MK[e], acc = 0.0;
                for (int q = 0; q < nb; q++) {
                    if (off_coef >= 0) F[off_coef + e * nb + q] = g[(size_t)q * oP] * SP[e] * m;
                    acc += g[(size_t)q * oP] * c[q];
                }
                if (off_sp >= 0) F[off_sp + e] = acc * m;
                if (off_sb >= 0) F[off_sb + e] = g[(size_t)nb * oP] * m;
            }
        Py_END_ALLOW_THREADS
        free(scratch);
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&gout); PyBuffer_Release(&ns); PyBuffer_Release(&coef); PyBuffer_Release(&sb);
    PyBuffer_Release(&sp); PyBuffer_Release(&mask); PyBuffer_Release(&idx); PyBuffer_Release(&vals);
    PyBuffer_Release(&gy); PyBuffer_Release(&flat);
    if (got_A) PyBuffer_Release(&A_view);
    if (got_r) PyBuffer_Release(&r_view);
    if (got_dv) PyBuffer_Release(&dv_view);
    if (got_gx) PyBuffer_Release(&gx_view);
    if (got_dA) PyBuffer_Release(&dA_view);
    return ret;
}
