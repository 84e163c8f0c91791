/* Compiled inner loops of kanstudio's hand-differentiated training objective (objective.py)
 * and of its LBFGS two-loop recursion (lbfgs.py), float64 only.
 *
 * Why C: a [2,5,1] KAN on 1000 rows is ~40 000 multiply-adds per evaluation, and numpy spends
 * more on dispatching its ~50 calls than on the arithmetic. Here each layer is one pass over
 * (input, sample, output) that touches only the k + 1 nonzero basis functions of each sample.
 * Optional: objective.py falls back to numpy when this module is not built, and the tests check
 * both against autograd.
 *
 * Shapes (all C-contiguous float64 unless said): layer input h (B, n), knots (n, K), coef
 * (n, o, nb) with nb = K - k - 1, per-edge scale_base / scale_sp / mask (n, o), node_scale and
 * bias (o). Per-sample basis cache: first function index idx (n, B) int32 and values vals
 * (n, B, k + 2): the k + 1 B-splines of the sample's span, then silu(x); dvals the same for d/dx.
 * The GIL is released while computing, so a UI thread stays responsive during training.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include <pthread.h>


/* ---- argument checking ---------------------------------------------------------------- */

static int check_len(Py_buffer *b, Py_ssize_t count, Py_ssize_t item, const char *name) {
    if (b->len != count * item) {
        PyErr_Format(PyExc_ValueError, "_kernels: %s has %zd bytes, expected %zd", name, b->len,
                     count * item);
        return 0;
    }
    return 1;
}

/* An optional buffer: None gives buf == NULL. */
static int get_opt(PyObject *obj, Py_buffer *view, int writable, double **out) {
    *out = NULL;
    if (obj == Py_None) return 1;
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return 0;
    *out = (double *)view->buf;
    return 1;
}

/* ---- B-spline basis on one knot vector ------------------------------------------------- */

/* The basis comes as per-span polynomial tables (spline.py's _span_polynomials, the same ones
 * the torch layers and the numpy objective use): span s = number of knots <= x (0 and K are
 * outside the knots, where the tables are zero; NaN lands in 0), u = x - span_t[s], and the
 * k + 1 values are sum_d tab[s][d][r] u^d for functions start[s] + r -- every index valid. */
static inline int basis_at(const double *t, int K, int k, const double *tab, const double *span_t,
                           const int *start, double x, double *v, double *d) {
    int s = 0;
    for (int j = 0; j < K; j++) s += x >= t[j];
    int R = k + 1;
    const double *c = tab + (size_t)s * R * R;
    double u = x - span_t[s];
    for (int r = 0; r < R; r++) {
        double p = c[k * R + r], dp = 0.0;
        for (int e = k - 1; e >= 0; e--) {
            dp = dp * u + p;
            p = p * u + c[e * R + r];
        }
        v[r] = p;
        if (d) d[r] = dp;
    }
    return start[s];
}

static inline void silu_at(double x, double *v, double *d) {
    double sig = 1.0 / (1.0 + exp(-x));
    *v = x * sig;
    if (d) *d = sig * (1.0 + x * (1.0 - sig));
}

/* sign(a) without branches: the signs of a layer's activations are close to random, and a
 * mispredicted branch per (sample, edge) cost more than the rest of the penalty. (NaN gives 0;
 * the loss is NaN then anyway, and training rolls back.) */
static inline double sign_of(double a) { return (double)((a > 0.0) - (a < 0.0)); }

/* ---- one layer: the per-sample loops, on a range of samples ------------------------------ */

#define MAXTHREADS 8

/* Effective weights, output-minor so the loops over outputs are contiguous: W[i][q][j] =
 * mask * scale_sp * coef[i][j][q] for the nb spline functions q, and W[i][nb][j] = mask *
 * scale_base for silu. */
static void effective_weights(int n, int o, int nb, const double *C, const double *SB, const double *SP,
                              const double *MK, double *W) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < o; j++) {
            size_t e = (size_t)i * o + j;
            double *w = W + (size_t)i * (nb + 1) * o + j;
            double f = MK[e] * SP[e];
            for (int q = 0; q < nb; q++) w[(size_t)q * o] = f * C[e * nb + q];
            w[(size_t)nb * o] = MK[e] * SB[e];
        }
}

typedef struct {
    int n, B, o, K, k, nb, compute, b0, b1;
    const double *H, *T, *TAB, *ST, *W, *NS, *BI;
    const int *START;
    double *Y, *A, *V, *DV, *mag, *tmp;
    int *I;
} fwd_job;

static void *fwd_run(void *arg) {
    fwd_job *J = arg;
    int n = J->n, B = J->B, o = J->o, K = J->K, k = J->k, nb = J->nb, R = k + 2;
    for (int b = J->b0; b < J->b1; b++)
        for (int j = 0; j < o; j++) J->Y[(size_t)b * o + j] = J->BI[j];
    for (int e = 0; e < n * o; e++) J->mag[e] = 0.0;
    for (int i = 0; i < n; i++) {
        if (J->compute) {
            const double *t = J->T + (size_t)i * K, *tb = J->TAB + (size_t)i * (K + 1) * (k + 1) * (k + 1);
            const double *st = J->ST + (size_t)i * (K + 1);
            const int *sti = J->START + (size_t)i * (K + 1);
            for (int b = J->b0; b < J->b1; b++) {
                size_t ib = (size_t)i * B + b;
                double x = J->H[(size_t)b * n + i];
                double *v = J->V + ib * R, *d = J->DV ? J->DV + ib * R : NULL;
                J->I[ib] = basis_at(t, K, k, tb, st, sti, x, v, d);
                silu_at(x, v + k + 1, d ? d + k + 1 : NULL);
            }
        }
        const double *Wi = J->W + (size_t)i * (nb + 1) * o, *ws = Wi + (size_t)nb * o;
        double *mag = J->mag + (size_t)i * o;
        if (o == 1) {  /* one output (the last layer): plain scalar loop, no inner vectors */
            double ns = J->NS[0], m = 0.0, w_s = ws[0];
            for (int b = J->b0; b < J->b1; b++) {
                size_t ib = (size_t)i * B + b;
                const double *v = J->V + ib * R, *w = Wi + J->I[ib];
                double a = v[k + 1] * w_s;
                for (int r = 0; r <= k; r++) a += v[r] * w[r];
                if (J->A) J->A[ib] = a;
                m += fabs(a);
                J->Y[b] += ns * a;
            }
            mag[0] += m;
            continue;
        }
        for (int b = J->b0; b < J->b1; b++) {
            size_t ib = (size_t)i * B + b;
            const double *v = J->V + ib * R;
            const double *w0 = Wi + (size_t)J->I[ib] * o;
            double *restrict a = J->A ? J->A + ib * o : J->tmp;
            double *restrict yb = J->Y + (size_t)b * o;
            double s = v[k + 1];
            for (int j = 0; j < o; j++) a[j] = s * ws[j];
            for (int r = 0; r <= k; r++) {
                double vr = v[r];
                const double *restrict w = w0 + (size_t)r * o;
                for (int j = 0; j < o; j++) a[j] += vr * w[j];
            }
            for (int j = 0; j < o; j++) {
                mag[j] += fabs(a[j]);
                yb[j] += J->NS[j] * a[j];
            }
        }
    }
    return NULL;
}

typedef struct {
    int n, B, o, k, nb, b0, b1;
    const double *GY, *A, *rr, *V, *DV, *W, *DA;
    const int *I;
    double *GW, *GX, *tmp;
} bwd_job;

static void *bwd_run(void *arg) {
    bwd_job *J = arg;
    int n = J->n, B = J->B, o = J->o, k = J->k, nb = J->nb, R = k + 2;
    memset(J->GW, 0, sizeof(double) * (size_t)n * (nb + 1) * o);
    double *restrict g = J->tmp;
    for (int i = 0; i < n; i++) {
        const double *Wi = J->W + (size_t)i * (nb + 1) * o, *ws = Wi + (size_t)nb * o;
        double *GWi = J->GW + (size_t)i * (nb + 1) * o, *gws = GWi + (size_t)nb * o;
        const double *rr = J->rr ? J->rr + (size_t)i * o : NULL;
        if (o == 1) {  /* one output: scalar loop */
            double w_s = ws[0], gs = 0.0;
            for (int b = J->b0; b < J->b1; b++) {
                size_t ib = (size_t)i * B + b;
                const double *v = J->V + ib * R;
                double gb = J->DA ? J->DA[ib] : J->GY[b];
                if (rr) {
                    double a = J->A[ib];
                    gb += rr[0] * sign_of(a);
                }
                int j0 = J->I[ib];
                gs += v[k + 1] * gb;
                double *gw = GWi + j0;
                for (int r = 0; r <= k; r++) gw[r] += v[r] * gb;
                if (J->GX) {
                    const double *d = J->DV + ib * R, *w = Wi + j0;
                    double acc = w_s * d[k + 1];
                    for (int r = 0; r <= k; r++) acc += w[r] * d[r];
                    J->GX[(size_t)b * n + i] = gb * acc;
                }
            }
            gws[0] += gs;
            continue;
        }
        for (int b = J->b0; b < J->b1; b++) {
            size_t ib = (size_t)i * B + b;
            const double *v = J->V + ib * R, *gy = J->GY + (size_t)b * o;
            int j0 = J->I[ib];
            if (J->DA) {
                for (int j = 0; j < o; j++) g[j] = J->DA[ib * o + j];
            } else if (rr) {
                const double *a = J->A + ib * o;
                for (int j = 0; j < o; j++)
                    g[j] = gy[j] + rr[j] * sign_of(a[j]);
            } else {
                for (int j = 0; j < o; j++) g[j] = gy[j];
            }
            double s = v[k + 1];
            for (int j = 0; j < o; j++) gws[j] += s * g[j];
            double *gw0 = GWi + (size_t)j0 * o;
            for (int r = 0; r <= k; r++) {
                double vr = v[r];
                double *restrict gw = gw0 + (size_t)r * o;
                for (int j = 0; j < o; j++) gw[j] += vr * g[j];
            }
            if (J->GX) {
                const double *d = J->DV + ib * R, *w0 = Wi + (size_t)j0 * o;
                double acc = 0.0;
                for (int j = 0; j < o; j++) acc += ws[j] * g[j];
                acc *= d[k + 1];
                for (int r = 0; r <= k; r++) {
                    const double *w = w0 + (size_t)r * o;
                    double dot = 0.0;
                    for (int j = 0; j < o; j++) dot += w[j] * g[j];
                    acc += d[r] * dot;
                }
                J->GX[(size_t)b * n + i] = acc;
            }
        }
    }
    return NULL;
}

/* Runs fn on jobs[0..nt-1], jobs[0] on the calling thread; nt == 1 starts no thread. */
static void run_jobs(void *(*fn)(void *), void *jobs, size_t size, int nt) {
    pthread_t th[MAXTHREADS];
    int started[MAXTHREADS] = {0};
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&th[t], NULL, fn, (char *)jobs + t * size) == 0;
    fn(jobs);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else fn((char *)jobs + t * size);  /* no thread: do its share here */
    }
}

/* ---- one layer, forward ---------------------------------------------------------------- */

static PyObject *layer_forward(PyObject *self, PyObject *args) {
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
        int nt = nthreads;
        size_t WN = (size_t)n * (nb + 1) * o;
        double *scratch = malloc(sizeof(double) * (WN + (size_t)nt * ((size_t)n * o + o)));
        if (!scratch) { PyErr_NoMemory(); goto done; }
        fwd_job jobs[MAXTHREADS];
        const double *C = coef.buf, *SB = sb.buf, *SP = sp.buf, *MK = mask.buf;
        double *W = scratch, *MAG = mag.buf;
        Py_BEGIN_ALLOW_THREADS
        effective_weights(n, o, nb, C, SB, SP, MK, W);
        for (int t = 0; t < nt; t++) {
            fwd_job *J = &jobs[t];
            J->n = n; J->B = B; J->o = o; J->K = K; J->k = k; J->nb = nb;
            J->H = h.buf; J->T = knots.buf; J->TAB = tab.buf; J->ST = span_t.buf; J->START = start.buf;
            J->W = W; J->NS = ns.buf; J->BI = bias.buf;
            J->Y = y.buf; J->A = A; J->V = vals.buf; J->DV = dv; J->I = idx.buf;
            J->mag = scratch + WN + (size_t)t * ((size_t)n * o + o);
            J->tmp = J->mag + (size_t)n * o;
            J->compute = compute_basis;
            J->b0 = (int)((long)B * t / nt); J->b1 = (int)((long)B * (t + 1) / nt);
        }
        run_jobs(fwd_run, jobs, sizeof(fwd_job), nt);
        for (int e = 0; e < n * o; e++) {
            double m = 0.0;
            for (int t = 0; t < nt; t++) m += jobs[t].mag[e];
            MAG[e] = m / B;
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
 * when r is given, r[i, o] * sign(A[i, b, o]) (the penalty's share) -- or, when dA (n, B, o)
 * is given (layers with product nodes), exactly dA. The gradients of coef,
 * scale_sp, scale_base and bias go into the flat gradient at the given offsets (-1: not
 * trained); gy (B, o) is scratch. gx (B, n), when given,
 * gets the gradient of the layer input. */
static PyObject *layer_backward(PyObject *self, PyObject *args) {
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
        int nt = nthreads;
        size_t WN = (size_t)n * (nb + 1) * o;
        double *scratch = malloc(sizeof(double) * (WN + (size_t)nt * (WN + o)));
        if (!scratch) { PyErr_NoMemory(); goto done; }
        bwd_job jobs[MAXTHREADS];
        const double *GO = gout.buf, *NS = ns.buf, *C = coef.buf, *SB = sb.buf, *SP = sp.buf, *MK = mask.buf;
        double *W = scratch, *GY = gy.buf, *F = flat.buf;
        Py_BEGIN_ALLOW_THREADS
        effective_weights(n, o, nb, C, SB, SP, MK, W);
        for (Py_ssize_t q = 0; q < (Py_ssize_t)B * o; q++) GY[q] = GO[q] * NS[q % o];
        if (off_bias >= 0)
            for (int j = 0; j < o; j++) {
                double acc = 0.0;
                for (int b = 0; b < B; b++) acc += GO[(size_t)b * o + j];
                F[off_bias + j] = acc;
            }
        for (int t = 0; t < nt; t++) {
            bwd_job *J = &jobs[t];
            J->n = n; J->B = B; J->o = o; J->k = k; J->nb = nb;
            J->GY = GY; J->A = A; J->rr = rr; J->DA = dA; J->V = vals.buf; J->DV = dv; J->I = idx.buf; J->W = W;
            J->GW = scratch + WN + (size_t)t * (WN + o);
            J->tmp = J->GW + WN;
            J->GX = gx;
            J->b0 = (int)((long)B * t / nt); J->b1 = (int)((long)B * (t + 1) / nt);
        }
        run_jobs(bwd_run, jobs, sizeof(bwd_job), nt);
        double *GW = jobs[0].GW;  /* d / d(effective weight), (n, nb + 1, o), summed over threads */
        for (int t = 1; t < nt; t++)
            for (size_t q = 0; q < WN; q++) GW[q] += jobs[t].GW[q];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < o; j++) {
                size_t e = (size_t)i * o + j;
                const double *c = C + e * nb, *g = GW + (size_t)i * (nb + 1) * o + j;
                double m = MK[e], acc = 0.0;
                for (int q = 0; q < nb; q++) {
                    if (off_coef >= 0) F[off_coef + e * nb + q] = g[(size_t)q * o] * SP[e] * m;
                    acc += g[(size_t)q * o] * c[q];
                }
                if (off_sp >= 0) F[off_sp + e] = acc * m;
                if (off_sb >= 0) F[off_sb + e] = g[(size_t)nb * o] * m;
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

/* ---- loss and penalty -------------------------------------------------------------------- */

/* mse of pred * out_scale + out_shift against target (B, o); writes d mse / d pred into g. */
static PyObject *mse_grad(PyObject *self, PyObject *args) {
    int B, o;
    Py_buffer pred, scale, shift, target, g;
    if (!PyArg_ParseTuple(args, "iiy*y*y*y*w*", &B, &o, &pred, &scale, &shift, &target, &g)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t D = sizeof(double), N = (Py_ssize_t)B * o;
    if (!check_len(&pred, N, D, "pred") || !check_len(&scale, o, D, "out_scale") ||
        !check_len(&shift, o, D, "out_shift") || !check_len(&target, N, D, "target") || !check_len(&g, N, D, "g"))
        goto done;
    {
        const double *P = pred.buf, *S = scale.buf, *H = shift.buf, *T = target.buf;
        double *G = g.buf, acc = 0.0, f = 2.0 / (double)N;
        for (Py_ssize_t q = 0; q < N; q++) {
            int j = (int)(q % o);
            double err = P[q] * S[j] + H[j] - T[q];
            acc += err * err;
            G[q] = err * f * S[j];
        }
        ret = PyFloat_FromDouble(acc / (double)N);
    }
done:
    PyBuffer_Release(&pred); PyBuffer_Release(&scale); PyBuffer_Release(&shift);
    PyBuffer_Release(&target); PyBuffer_Release(&g);
    return ret;
}

/* One layer's mu1 * L1 + mu2 * entropy of the mean edge magnitudes mag (m,) (regularize.py's
 * _l1_entropy, the same expression); writes scale * d penalty / d mag into r. */
static PyObject *l1_entropy(PyObject *self, PyObject *args) {
    int m;
    double mu1, mu2, scale;
    Py_buffer mag, r;
    if (!PyArg_ParseTuple(args, "iy*dddw*", &m, &mag, &mu1, &mu2, &scale, &r)) return NULL;
    PyObject *ret = NULL;
    if (!check_len(&mag, m, sizeof(double), "mag") || !check_len(&r, m, sizeof(double), "r")) goto done;
    {
        const double *M = mag.buf;
        double *G = r.buf, l1 = 0.0, ent = 0.0, dot = 0.0;
        for (int q = 0; q < m; q++) l1 += M[q];
        double L = l1 + 1e-12;
        for (int q = 0; q < m; q++) {
            double p = M[q] / L, lg = log(p + 1e-12);
            ent -= p * lg;
            G[q] = -(lg + p / (p + 1e-12)); /* dS/dp */
            dot += G[q] * p;
        }
        for (int q = 0; q < m; q++) G[q] = scale * (mu1 + mu2 * (G[q] - dot) / L);
        ret = PyFloat_FromDouble(mu1 * l1 + mu2 * ent);
    }
done:
    PyBuffer_Release(&mag); PyBuffer_Release(&r);
    return ret;
}

/* ---- the dense feature block of the autograd layers (spline.py) ------------------------- */

/* Rows q = 0..N-1 of a block F (N, width): zeros, the k + 1 local values vals[r][q] at columns
 * c0[q] + r, and, with silu, vals[k+1][q] in the last column. One streaming pass instead of a
 * zero fill and k + 2 scatters; float32 or float64 (itemsize 4 or 8). */
#define ASSEMBLE_BODY(T)                                                                        \
    {                                                                                           \
        const T *vv = (const T *)J->vals;                                                        \
        T *F = (T *)J->F;                                                                        \
        Py_ssize_t W = J->width, N = J->N;                                                       \
        memset(F + J->q0 * W, 0, sizeof(T) * (size_t)(J->q1 - J->q0) * W);                      \
        for (int r = 0; r <= J->k; r++) {                                                        \
            const T *v = vv + r * N;                                                             \
            T *Fr = F + r;                                                                       \
            for (Py_ssize_t q = J->q0; q < J->q1; q++) Fr[q * W + J->c0[q]] = v[q];              \
        }                                                                                       \
        if (J->silu) {                                                                           \
            const T *v = vv + (J->k + 1) * N;                                                    \
            T *Fs = F + W - 1;                                                                   \
            for (Py_ssize_t q = J->q0; q < J->q1; q++) Fs[q * W] = v[q];                         \
        }                                                                                       \
    }

/* gx[q] = sum_r dL[r][q] grad[row q][c0[q] + r] (+ dL[k+1][q] grad[row q][width - 1]); row q =
 * (b, i) = (q / n, q % n) starts at b * sb + i * sn (a transposed batched-matmul gradient too). */
#define GRAD_BODY(T)                                                                            \
    {                                                                                           \
        const T *dl = (const T *)J->vals, *G = (const T *)J->F;                                  \
        T *gx = (T *)J->gx;                                                                      \
        Py_ssize_t N = J->N, n = J->n, W = J->width;                                              \
        Py_ssize_t b = J->q0 / n, i = J->q0 % n;                                                  \
        for (Py_ssize_t q = J->q0; q < J->q1; q++) {                                             \
            const T *row = G + b * J->sb + i * J->sn;                                            \
            const T *g = row + J->c0[q];                                                         \
            double acc = 0.0;                                                                   \
            for (int r = 0; r <= J->k; r++) acc += (double)dl[r * N + q] * g[r];                 \
            if (J->silu) acc += (double)dl[(J->k + 1) * N + q] * row[W - 1];                     \
            gx[q] = (T)acc;                                                                      \
            if (++i == n) { i = 0; b++; }                                                        \
        }                                                                                       \
    }

typedef struct {
    Py_ssize_t N, q0, q1, width, n, sb, sn;
    int k, silu, itemsize;
    const long long *c0;
    const void *vals;
    void *F, *gx;
} block_job;

static void *assemble_run(void *arg) {
    block_job *J = arg;
    if (J->itemsize == 4) ASSEMBLE_BODY(float) else ASSEMBLE_BODY(double)
    return NULL;
}

static void *grad_run(void *arg) {
    block_job *J = arg;
    if (J->itemsize == 4) GRAD_BODY(float) else GRAD_BODY(double)
    return NULL;
}

static int check_c0(const long long *c0, Py_ssize_t N, Py_ssize_t width, int k, int silu) {
    Py_ssize_t hi = width - (silu ? 1 : 0) - (k + 1);
    for (Py_ssize_t q = 0; q < N; q++)
        if (c0[q] < 0 || c0[q] > hi) return 0;
    return 1;
}

static void split_rows(block_job *jobs, int nt, Py_ssize_t N) {
    for (int t = 0; t < nt; t++) {
        if (t > 0) jobs[t] = jobs[0];
        jobs[t].q0 = N * t / nt;
        jobs[t].q1 = N * (t + 1) / nt;
    }
}

/* assemble(N, width, k, silu, itemsize, vals (k+1+silu, N), c0 (N,) int64, F (N, width), nthreads) */
static PyObject *assemble(PyObject *self, PyObject *args) {
    Py_ssize_t N, width;
    int k, silu, itemsize, nthreads;
    Py_buffer vals, c0, F;
    if (!PyArg_ParseTuple(args, "nnipiy*y*w*i", &N, &width, &k, &silu, &itemsize, &vals, &c0, &F, &nthreads))
        return NULL;
    PyObject *ret = NULL;
    if ((itemsize != 4 && itemsize != 8) || k < 1 || width < k + 1 + silu) {
        PyErr_SetString(PyExc_ValueError, "_kernels.assemble: bad itemsize, k or width");
        goto done;
    }
    if (!check_len(&vals, N * (k + 1 + silu), itemsize, "vals") || !check_len(&c0, N, 8, "c0") ||
        !check_len(&F, N * width, itemsize, "F"))
        goto done;
    if (!check_c0(c0.buf, N, width, k, silu)) {
        PyErr_SetString(PyExc_ValueError, "_kernels.assemble: a window start lies outside the block");
        goto done;
    }
    if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 1;
    {
        block_job jobs[MAXTHREADS];
        jobs[0] = (block_job){.N = N, .width = width, .k = k, .silu = silu, .itemsize = itemsize,
                              .c0 = c0.buf, .vals = vals.buf, .F = F.buf};
        split_rows(jobs, nthreads, N);
        Py_BEGIN_ALLOW_THREADS
        run_jobs(assemble_run, jobs, sizeof(block_job), nthreads);
        Py_END_ALLOW_THREADS
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&vals); PyBuffer_Release(&c0); PyBuffer_Release(&F);
    return ret;
}

/* block_grad(N, width, k, silu, itemsize, n, sb, sn, grad (flat, rows at b*sb + i*sn), c0, dL, gx (N,), nthreads) */
static PyObject *block_grad(PyObject *self, PyObject *args) {
    Py_ssize_t N, width, n, sb, sn;
    int k, silu, itemsize, nthreads;
    Py_buffer grad, c0, dL, gx;
    if (!PyArg_ParseTuple(args, "nnipinnny*y*y*w*i", &N, &width, &k, &silu, &itemsize, &n, &sb, &sn, &grad,
                          &c0, &dL, &gx, &nthreads))
        return NULL;
    PyObject *ret = NULL;
    if ((itemsize != 4 && itemsize != 8) || k < 1 || width < k + 1 + silu || n < 1 || N % n || sb < 0 || sn < 0) {
        PyErr_SetString(PyExc_ValueError, "_kernels.block_grad: bad itemsize, k, width or strides");
        goto done;
    }
    Py_ssize_t B = N / n;
    Py_ssize_t last = N ? (B - 1) * sb + (n - 1) * sn + width : 0; /* elements the rows reach */
    if (!check_len(&c0, N, 8, "c0") || !check_len(&dL, N * (k + 1 + silu), itemsize, "dL") ||
        !check_len(&gx, N, itemsize, "gx"))
        goto done;
    if (grad.len < last * itemsize) {
        PyErr_SetString(PyExc_ValueError, "_kernels.block_grad: strides reach past the gradient");
        goto done;
    }
    if (!check_c0(c0.buf, N, width, k, silu)) {
        PyErr_SetString(PyExc_ValueError, "_kernels.block_grad: a window start lies outside the block");
        goto done;
    }
    if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 1;
    {
        block_job jobs[MAXTHREADS];
        jobs[0] = (block_job){.N = N, .width = width, .n = n, .sb = sb, .sn = sn, .k = k, .silu = silu,
                              .itemsize = itemsize, .c0 = c0.buf, .vals = dL.buf, .F = grad.buf, .gx = gx.buf};
        split_rows(jobs, nthreads, N);
        Py_BEGIN_ALLOW_THREADS
        run_jobs(grad_run, jobs, sizeof(block_job), nthreads);
        Py_END_ALLOW_THREADS
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&grad); PyBuffer_Release(&c0); PyBuffer_Release(&dL); PyBuffer_Release(&gx);
    return ret;
}

/* ---- the uniform-knot shortcut's local values (spline.py's _UniformGrid) ----------------- */

/* Sample q (batch-major, input i = q % n): t = x * scale[i] + shift[i] in the storage type (as
 * torch computes it), j = floor(t), f = t - j; inside 0 <= t < G the k + 1 values are the
 * cardinal polynomials A (slot, degree) at f, and dvals = scale * D (slot, degree - 1) at f. Rows
 * outside (and NaN) get j = 0, f = 0 and are listed in rest for the table evaluation. */
#define UNIFORM_BODY(T)                                                                         \
    {                                                                                           \
        const T *X = (const T *)J->x, *SC = (const T *)J->scale, *SH = (const T *)J->shift;      \
        T *V = (T *)J->vals, *DV = (T *)J->dvals;                                                \
        Py_ssize_t N = J->N, n = J->n;                                                           \
        int R = J->k + 1;                                                                       \
        T A[8 * 8], D[8 * 8], G = (T)J->G;                                                       \
        for (int q = 0; q < R * R; q++) A[q] = (T)J->A[q];                                       \
        for (int q = 0; q < R * (R - 1); q++) D[q] = (T)J->D[q];                                 \
        Py_ssize_t nout = 0;                                                                    \
        for (Py_ssize_t q0 = J->q0; q0 < J->q1; q0 += n) { /* one sample: its n inputs */        \
            const T *x = X + q0;                                                                 \
            long long *c0 = J->c0 + q0;                                                          \
            T f[512];                                                                           \
            for (Py_ssize_t i = 0; i < n; i++) {                                                 \
                T t = SH[i] + x[i] * SC[i];                                                      \
                int in = (t >= 0) & (t < G);                                                     \
                nout += !in;                                                                    \
                t = in ? t : (T)0;                                                               \
                int j = (int)t; /* t >= 0: truncation is floor */                                \
                c0[i] = j;                                                                       \
                f[i] = t - (T)j;                                                                 \
            }                                                                                   \
            for (int r = 0; r < R; r++) { /* Horner, degree-major: the sample loop vectorises */   \
                const T *a = A + r * R;                                                          \
                T *restrict v = V + r * N + q0;                                                  \
                for (Py_ssize_t i = 0; i < n; i++) v[i] = a[R - 1];                              \
                for (int d = R - 2; d >= 0; d--) {                                               \
                    T c = a[d];                                                                  \
                    for (Py_ssize_t i = 0; i < n; i++) v[i] = v[i] * f[i] + c;                   \
                }                                                                               \
                if (DV) {                                                                        \
                    const T *dd = D + r * (R - 1);                                               \
                    T *restrict w = DV + r * N + q0;                                             \
                    for (Py_ssize_t i = 0; i < n; i++) w[i] = dd[R - 2];                         \
                    for (int d = R - 3; d >= 0; d--) {                                           \
                        T c = dd[d];                                                             \
                        for (Py_ssize_t i = 0; i < n; i++) w[i] = w[i] * f[i] + c;               \
                    }                                                                           \
                    for (Py_ssize_t i = 0; i < n; i++) w[i] *= SC[i];                            \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        J->nrest = 0;                                                                           \
        if (nout)                                                                               \
            for (Py_ssize_t q = J->q0; q < J->q1; q++) {                                         \
                T t = SH[q % n] + X[q] * SC[q % n];                                              \
                if (!(t >= 0 && t < G)) J->rest[J->nrest++] = q;                                 \
            }                                                                                   \
    }

typedef struct {
    Py_ssize_t N, n, q0, q1, nrest;
    int k, G, itemsize;
    const void *x, *scale, *shift;
    const double *A, *D;
    void *vals, *dvals;
    long long *c0, *rest;
} uniform_job;

static void *uniform_run(void *arg) {
    uniform_job *J = arg;
    if (J->itemsize == 4) UNIFORM_BODY(float) else UNIFORM_BODY(double)
    return NULL;
}

/* uniform_local(N, n, k, G, itemsize, x (N,), scale (n,), shift (n,), A (k+1, k+1) f64,
 * D (k+1, k) f64, vals (>= k+1 rows of N), dvals or None, c0 (N,) int64, rest (N,) int64,
 * nthreads) -> number of rows written to rest (ascending) */
static PyObject *uniform_local(PyObject *self, PyObject *args) {
    Py_ssize_t N, n;
    int k, G, itemsize, nthreads;
    Py_buffer x, scale, shift, A, D, vals, c0, rest;
    PyObject *dv_obj;
    Py_buffer dv_view;
    if (!PyArg_ParseTuple(args, "nniiiy*y*y*y*y*w*Ow*w*i", &N, &n, &k, &G, &itemsize, &x, &scale, &shift, &A,
                          &D, &vals, &dv_obj, &c0, &rest, &nthreads))
        return NULL;
    PyObject *ret = NULL;
    void *dv = NULL;
    int got_dv = 0;
    if (dv_obj != Py_None) {
        if (PyObject_GetBuffer(dv_obj, &dv_view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) goto done;
        got_dv = 1;
        dv = dv_view.buf;
    }
    int R = k + 1;
    if ((itemsize != 4 && itemsize != 8) || k < 1 || k > 7 || G < 1 || n < 1 || n > 512 || N % n) {
        PyErr_SetString(PyExc_ValueError, "_kernels.uniform_local: bad itemsize, k (1..7), G or n (1..512)");
        goto done;
    }
    if (!check_len(&x, N, itemsize, "x") || !check_len(&scale, n, itemsize, "scale") ||
        !check_len(&shift, n, itemsize, "shift") || !check_len(&A, (Py_ssize_t)R * R, 8, "A") ||
        !check_len(&D, (Py_ssize_t)R * k, 8, "D") || !check_len(&c0, N, 8, "c0") || !check_len(&rest, N, 8, "rest"))
        goto done;
    if (vals.len < N * R * itemsize || (got_dv && dv_view.len < N * R * itemsize)) {
        PyErr_SetString(PyExc_ValueError, "_kernels.uniform_local: vals/dvals hold fewer than k + 1 rows");
        goto done;
    }
    if (nthreads < 1 || nthreads > MAXTHREADS) nthreads = 1;
    {
        uniform_job jobs[MAXTHREADS];
        long long *R0 = rest.buf;
        for (int t = 0; t < nthreads; t++) {
            jobs[t] = (uniform_job){.N = N, .n = n, .k = k, .G = G, .itemsize = itemsize, .x = x.buf,
                                    .scale = scale.buf, .shift = shift.buf, .A = A.buf, .D = D.buf,
                                    .vals = vals.buf, .dvals = dv, .c0 = c0.buf};
            Py_ssize_t B = N / n;  /* whole samples per job */
            jobs[t].q0 = B * t / nthreads * n;
            jobs[t].q1 = B * (t + 1) / nthreads * n;
            jobs[t].rest = R0 + jobs[t].q0; /* each job lists its rows in its own part */
        }
        Py_BEGIN_ALLOW_THREADS
        run_jobs(uniform_run, jobs, sizeof(uniform_job), nthreads);
        Py_END_ALLOW_THREADS
        Py_ssize_t m = 0;  /* gather the parts: ascending, as torch.nonzero gives them */
        for (int t = 0; t < nthreads; t++) {
            memmove(R0 + m, jobs[t].rest, sizeof(long long) * jobs[t].nrest);
            m += jobs[t].nrest;
        }
        ret = PyLong_FromSsize_t(m);
    }
done:
    PyBuffer_Release(&x); PyBuffer_Release(&scale); PyBuffer_Release(&shift); PyBuffer_Release(&A);
    PyBuffer_Release(&D); PyBuffer_Release(&vals); PyBuffer_Release(&c0); PyBuffer_Release(&rest);
    if (got_dv) PyBuffer_Release(&dv_view);
    return ret;
}

/* ---- LBFGS two-loop recursion ---------------------------------------------------------- */

/* d = -H g for the curvature pairs (s_i, y_i), i = 0..m-1 oldest first, stored as rows of
 * S and Y (m, p), with ro_i = 1 / (y_i . s_i) and the initial scaling H_diag; torch's
 * algorithm, the same operations in the same order. Writes d (p,); al is scratch (m,). */
static PyObject *two_loop(PyObject *self, PyObject *args) {
    int m, p;
    double H_diag;
    Py_buffer g, S, Y, ro, al, d;
    if (!PyArg_ParseTuple(args, "iiy*y*y*y*dw*w*", &m, &p, &g, &S, &Y, &ro, &H_diag, &al, &d)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t D = sizeof(double);
    if (!check_len(&g, p, D, "g") || !check_len(&d, p, D, "d") || !check_len(&ro, m, D, "ro") ||
        !check_len(&al, m, D, "al") || S.len < (Py_ssize_t)m * p * D || Y.len < (Py_ssize_t)m * p * D) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_kernels: S, Y too small");
        goto done;
    }
    {
        const double *G = g.buf, *SS = S.buf, *YY = Y.buf, *RO = ro.buf;
        double *AL = al.buf, *q = d.buf;
        for (int j = 0; j < p; j++) q[j] = -G[j];
        for (int i = m - 1; i >= 0; i--) {
            const double *s = SS + (size_t)i * p, *y = YY + (size_t)i * p;
            double dot = 0.0;
            for (int j = 0; j < p; j++) dot += s[j] * q[j];
            AL[i] = dot * RO[i];
            for (int j = 0; j < p; j++) q[j] -= AL[i] * y[j];
        }
        for (int j = 0; j < p; j++) q[j] *= H_diag;
        for (int i = 0; i < m; i++) {
            const double *s = SS + (size_t)i * p, *y = YY + (size_t)i * p;
            double dot = 0.0;
            for (int j = 0; j < p; j++) dot += y[j] * q[j];
            double be = dot * RO[i];
            for (int j = 0; j < p; j++) q[j] += (AL[i] - be) * s[j];
        }
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&g); PyBuffer_Release(&S); PyBuffer_Release(&Y); PyBuffer_Release(&ro);
    PyBuffer_Release(&al); PyBuffer_Release(&d);
    return ret;
}

static PyMethodDef methods[] = {
    {"layer_forward", layer_forward, METH_VARARGS, "One plain-spline KAN layer forward (see _kernels.c)."},
    {"layer_backward", layer_backward, METH_VARARGS, "One plain-spline KAN layer backward (see _kernels.c)."},
    {"mse_grad", mse_grad, METH_VARARGS, "Mean squared error and its gradient (see _kernels.c)."},
    {"l1_entropy", l1_entropy, METH_VARARGS, "One layer's L1 + entropy penalty (see _kernels.c)."},
    {"assemble", assemble, METH_VARARGS, "Dense feature block from local values (see _kernels.c)."},
    {"block_grad", block_grad, METH_VARARGS, "Input gradient through a dense feature block (see _kernels.c)."},
    {"uniform_local", uniform_local, METH_VARARGS, "Local basis values on uniform knots (see _kernels.c)."},
    {"two_loop", two_loop, METH_VARARGS, "The LBFGS two-loop recursion (see _kernels.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
