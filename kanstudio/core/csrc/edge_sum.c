/* The autograd layers' sum over spline + SiLU edges (compiled_edge_sum.py), float32 or
 * float64, forward and backward, without the dense feature block.
 *
 * The torch path builds the block (batch, n, G+k+1) -- 9.4 MB for 4096 x 64 inputs in float32
 * -- of which k + 2 entries per row are nonzero, multiplies it with the weights, and in the
 * backward builds its gradient (a second such block) to reduce it to the input gradient. Here
 * each sample's basis is recomputed where it is used (a span search and a Horner step, cheaper
 * than reading it back from memory) and only the k + 2 nonzero weight rows of each edge are
 * touched: samples in chunks, inputs one at a time, so a chunk's outputs and one input's weights
 * and weight-gradient rows stay in L1.
 *
 * Shapes (C-contiguous, all of one element type): x (B, n), knots (n, K), tables (n, K+1,
 * k+1 [degree], k+1 [slot]) and span_t (n, K+1) from spline.py's KnotTables, start (n, K+1)
 * int32, weights W (n, nb+1, o) -- the nb = K-k-1 spline rows, then silu's -- y and gy (B, o),
 * gW (n, nb+1, o), gx (B, n); the edge magnitudes mag = mean_b |phi_ij| and the penalty's
 * gradient share r (n, o). */
#include "kernels.h"

typedef struct {
    int n, B, o, oP, K, k, nb, b0, b1, CB;
    const void *X, *T, *TAB, *ST, *Wp, *GY, *RM;
    const int *START;
    void *OUT, *GW, *GX, *MAG, *scratch;
} es_job;

#define REAL_BITS 32
#define VW 4
#define LOOPS(name) name##_f32_generic
#include "edge_sum_loops.h"
#define REAL_BITS 64
#define VW 2
#define LOOPS(name) name##_f64_generic
#include "edge_sum_loops.h"

#ifdef HAVE_AVX2_LOOPS
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define REAL_BITS 32
#define VW 8
#define LOOPS(name) name##_f32_avx2
#include "edge_sum_loops.h"
#define REAL_BITS 64
#define VW 4
#define LOOPS(name) name##_f64_avx2
#include "edge_sum_loops.h"
#pragma GCC pop_options
#endif

typedef struct {
    void *(*fwd)(void *), *(*bwd)(void *);
    int vw;
} es_loops;

/* The copy for this element size, on the instruction set layer.c's isa() has chosen. */
static es_loops pick(int itemsize) {
#ifdef HAVE_AVX2_LOOPS
    if (loops_are_avx2())
        return itemsize == 4 ? (es_loops){fwd_run_f32_avx2, bwd_run_f32_avx2, 8}
                             : (es_loops){fwd_run_f64_avx2, bwd_run_f64_avx2, 4};
#endif
    return itemsize == 4 ? (es_loops){fwd_run_f32_generic, bwd_run_f32_generic, 4}
                         : (es_loops){fwd_run_f64_generic, bwd_run_f64_generic, 2};
}

#define LINE 128
static inline size_t line_bytes(size_t bytes) { return (bytes + LINE - 1) / LINE * LINE; }

typedef struct {
    Py_buffer x, knots, tab, span_t, start, w;
    int n, B, o, K, k, nb, itemsize;
} es_args;

static void release(es_args *a) {
    PyBuffer_Release(&a->x); PyBuffer_Release(&a->knots); PyBuffer_Release(&a->tab);
    PyBuffer_Release(&a->span_t); PyBuffer_Release(&a->start); PyBuffer_Release(&a->w);
}

static int check(es_args *a) {
    Py_ssize_t S = a->itemsize, n = a->n, K = a->K, R1 = a->k + 1;
    a->nb = a->K - a->k - 1;
    if ((S != 4 && S != 8) || a->k < 1 || a->nb < 1 || a->n < 1 || a->o < 1 || a->B < 0) {
        PyErr_SetString(PyExc_ValueError, "_kernels: bad itemsize, k, knots or shape");
        return 0;
    }
    return check_len(&a->x, (Py_ssize_t)a->B * n, S, "x") && check_len(&a->knots, n * K, S, "knots") &&
           check_len(&a->tab, n * (K + 1) * R1 * R1, S, "tables") && check_len(&a->span_t, n * (K + 1), S, "span_t") &&
           check_len(&a->start, n * (K + 1), sizeof(int), "start") &&
           check_len(&a->w, n * (a->nb + 1) * (Py_ssize_t)a->o, S, "weights");
}

/* Jobs per thread: run_jobs_team hands them out one at a time, so a thread that starts late
 * takes fewer of them instead of holding up the rest. Each job sums its own weight
 * gradient, and those are added in job order: the same result whichever thread ran a job. */
#define JOBS_PER_THREAD 4
#define MAXJOBS (JOBS_PER_THREAD * MAXTHREADS)

/* How many jobs: JOBS_PER_THREAD per thread, unless the jobs' own sums (weight gradients,
 * edge magnitudes) would pass 16 MB (wide layers: one per thread then), and no more than there
 * are chunks of samples. */
static int job_count(es_args *a, es_loops L, int nt, int own_sums) {
    int oP = (a->o + L.vw - 1) / L.vw * L.vw;
    size_t gw = (size_t)a->n * (a->nb + 1) * oP * a->itemsize;
    int nj = nt * JOBS_PER_THREAD;
    if (own_sums && gw * nj > ((size_t)16 << 20)) nj = nt;
    int chunks = (a->B + 63) / 64;
    if (nj > chunks) nj = chunks > nt ? chunks : nt;
    return nj < 1 ? 1 : nj;
}

/* rows x o -> rows x oP, the padding columns zero */
static void pad_columns(char *dst, const char *src, size_t rows, int o, int oP, int S) {
    for (size_t r = 0; r < rows; r++) {
        memcpy(dst + r * oP * S, src + r * o * S, (size_t)o * S);
        memset(dst + (r * oP + o) * S, 0, (size_t)(oP - o) * S);
    }
}

/* Per job: its share of samples, chunk scratch, and its weight gradient (backward) or edge
 * magnitudes (forward with mag); the padded weights (n, nb+1, oP) and penalty share r (n, oP)
 * are shared. Returns the block to free, or NULL. */
static char *setup_jobs(es_args *a, es_loops L, es_job *jobs, int nt, int backward, int with_mag, const void *r) {
    int vw = L.vw, oP = (a->o + vw - 1) / vw * vw, R = a->k + 2, S = a->itemsize;
    int CB = (int)(16384 / ((size_t)S * oP));  /* the chunk's outputs: 16 KB of L1 */
    CB = CB < 8 ? 8 : CB > 64 ? 64 : CB;
    size_t WN = (size_t)a->n * (a->nb + 1) * oP, MN = line_bytes(S * (size_t)a->n * oP);
    size_t per = line_bytes(S * ((size_t)CB * oP + (size_t)CB * (2 * R + 1)) + sizeof(int) * CB);
    size_t gw = backward ? line_bytes(S * WN) : with_mag ? MN : 0;
    char *mem = aligned_alloc(LINE, line_bytes(S * WN) + (r ? MN : 0) + (size_t)nt * (per + gw));
    if (!mem) return NULL;
    pad_columns(mem, a->w.buf, (size_t)a->n * (a->nb + 1), a->o, oP, S);
    char *p = mem + line_bytes(S * WN), *rm = NULL;
    if (r) {
        rm = p;
        pad_columns(rm, r, (size_t)a->n, a->o, oP, S);
        p += MN;
    }
    for (int t = 0; t < nt; t++) {
        es_job *J = &jobs[t];
        J->n = a->n; J->B = a->B; J->o = a->o; J->oP = oP; J->K = a->K; J->k = a->k; J->nb = a->nb; J->CB = CB;
        J->X = a->x.buf; J->T = a->knots.buf; J->TAB = a->tab.buf; J->ST = a->span_t.buf; J->START = a->start.buf;
        J->Wp = mem;
        J->RM = rm;
        J->b0 = (int)((long)a->B * t / nt); J->b1 = (int)((long)a->B * (t + 1) / nt);
        J->scratch = p; p += per;
        J->GW = backward ? p : NULL;
        J->MAG = !backward && with_mag ? p : NULL;
        p += gw;
        J->OUT = J->GX = NULL;
        J->GY = NULL;
    }
    return mem;
}

/* out[r][j] = sum over jobs of their rows x oP block (in job order: deterministic) times scale,
 * the padding dropped */
static void sum_jobs(void *out, es_job *jobs, int nj, int in_gw, size_t rows, int o, int S, double scale) {
    int oP = jobs[0].oP;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < o; j++) {
            double acc = 0.0;
            for (int t = 0; t < nj; t++) {
                const void *src = in_gw ? jobs[t].GW : jobs[t].MAG;
                acc += S == 4 ? ((const float *)src)[r * oP + j] : ((const double *)src)[r * oP + j];
            }
            if (S == 4) ((float *)out)[r * o + j] = (float)(acc * scale);
            else ((double *)out)[r * o + j] = acc * scale;
        }
}

/* None after a run whose jobs' block (freed here) was allocated; MemoryError if it was not */
static PyObject *finished(char *mem) {
    if (!mem) return PyErr_NoMemory();
    free(mem);
    Py_RETURN_NONE;
}

/* edge_sum_forward(n, B, o, K, k, itemsize, x, knots, tables, span_t, start, W, y, mag,
 * nthreads): y (B, o) = the sum over each output's edges (no bias, no node scale); mag (n, o),
 * unless None, the edge magnitudes mean_b |phi_ij|. */
PyObject *edge_sum_forward(PyObject *self, PyObject *args) {
    es_args a;
    Py_buffer y, mag_view;
    PyObject *mag_obj;
    double *mag;
    int nthreads;
    if (!PyArg_ParseTuple(args, "iiiiiiy*y*y*y*y*y*w*Oi", &a.n, &a.B, &a.o, &a.K, &a.k, &a.itemsize, &a.x, &a.knots,
                          &a.tab, &a.span_t, &a.start, &a.w, &y, &mag_obj, &nthreads))
        return NULL;
    PyObject *ret = NULL;
    int got_mag = 0;
    if (!get_opt(mag_obj, &mag_view, 1, &mag)) goto done;
    got_mag = mag != NULL;
    if (!check(&a) || !check_len(&y, (Py_ssize_t)a.B * a.o, a.itemsize, "y") ||
        (got_mag && !check_len(&mag_view, (Py_ssize_t)a.n * a.o, a.itemsize, "mag")))
        goto done;
    if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 1;
    {
        es_job jobs[MAXJOBS];
        es_loops L = pick(a.itemsize);
        char *mem = NULL;
        int nj = job_count(&a, L, nthreads, got_mag);
        Py_BEGIN_ALLOW_THREADS
        mem = setup_jobs(&a, L, jobs, nj, 0, got_mag, NULL);
        if (mem) {
            for (int t = 0; t < nj; t++) jobs[t].OUT = y.buf;
            run_jobs_team(L.fwd, jobs, sizeof(es_job), nj, nthreads);
            if (got_mag) sum_jobs(mag, jobs, nj, 0, (size_t)a.n, a.o, a.itemsize, a.B ? 1.0 / a.B : 0.0);
        }
        Py_END_ALLOW_THREADS
        ret = finished(mem);
    }
done:
    release(&a);
    PyBuffer_Release(&y);
    if (got_mag) PyBuffer_Release(&mag_view);
    return ret;
}

/* edge_sum_backward(n, B, o, K, k, itemsize, x, knots, tables, span_t, start, W, gy, r, gW,
 * gx, nthreads): gW (n, nb+1, o) = d loss / d W from gy (B, o) = d loss / d y and, unless None,
 * r (n, o) = d loss / d mag / B (each edge's gradient gets r sign(phi) added); gx (B, n) =
 * d loss / d x unless gx is None. */
PyObject *edge_sum_backward(PyObject *self, PyObject *args) {
    es_args a;
    Py_buffer gy, gW, gx_view, r_view;
    PyObject *gx_obj, *r_obj;
    int nthreads;
    double *gx_ptr, *r_ptr;
    if (!PyArg_ParseTuple(args, "iiiiiiy*y*y*y*y*y*y*Ow*Oi", &a.n, &a.B, &a.o, &a.K, &a.k, &a.itemsize, &a.x,
                          &a.knots, &a.tab, &a.span_t, &a.start, &a.w, &gy, &r_obj, &gW, &gx_obj, &nthreads))
        return NULL;
    PyObject *ret = NULL;
    int got_gx = 0, got_r = 0;
    if (!get_opt(gx_obj, &gx_view, 1, &gx_ptr)) goto done;
    got_gx = gx_ptr != NULL;
    if (!get_opt(r_obj, &r_view, 0, &r_ptr)) goto done;
    got_r = r_ptr != NULL;
    if (!check(&a) || !check_len(&gy, (Py_ssize_t)a.B * a.o, a.itemsize, "gy") ||
        !check_len(&gW, (Py_ssize_t)a.n * (a.nb + 1) * a.o, a.itemsize, "gW") ||
        (got_gx && !check_len(&gx_view, (Py_ssize_t)a.B * a.n, a.itemsize, "gx")) ||
        (got_r && !check_len(&r_view, (Py_ssize_t)a.n * a.o, a.itemsize, "r")))
        goto done;
    if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 1;
    {
        es_job jobs[MAXJOBS];
        es_loops L = pick(a.itemsize);
        char *mem = NULL;
        int nj = job_count(&a, L, nthreads, 1);
        Py_BEGIN_ALLOW_THREADS
        mem = setup_jobs(&a, L, jobs, nj, 1, 0, r_ptr);
        if (mem) {
            for (int t = 0; t < nj; t++) {
                jobs[t].GY = gy.buf;
                jobs[t].GX = gx_ptr;
            }
            run_jobs_team(L.bwd, jobs, sizeof(es_job), nj, nthreads);
            sum_jobs(gW.buf, jobs, nj, 1, (size_t)a.n * (a.nb + 1), a.o, a.itemsize, 1.0);
        }
        Py_END_ALLOW_THREADS
        ret = finished(mem);
    }
done:
    release(&a);
    PyBuffer_Release(&gy);
    PyBuffer_Release(&gW);
    if (got_gx) PyBuffer_Release(&gx_view);
    if (got_r) PyBuffer_Release(&r_view);
    return ret;
}
