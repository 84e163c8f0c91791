/* One plain-spline KAN layer of the training objective (objective.py), forward and backward,
 * float64: one pass over (input, sample, output) that touches only the k + 1 nonzero basis
 * functions of each sample, threaded over sample ranges, GIL released.
 *
 * Shapes (all C-contiguous float64 unless said): layer input h (B, n), knots (n, K), coef
 * (n, o, nb) with nb = K - k - 1, per-edge scale_base / scale_sp / mask (n, o), node_scale and
 * bias (o). Per-sample basis cache: first function index idx (n, B) int32 and values vals
 * (n, B, k + 2): the k + 1 B-splines of the sample's span, then silu(x); dvals the same for d/dx. */
#include "kernels.h"

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
