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

/* ---- one layer, forward ---------------------------------------------------------------- */

static PyObject *layer_forward(PyObject *self, PyObject *args) {
    int n, B, o, K, k, compute_basis;
    Py_buffer h, knots, tab, span_t, start, coef, sb, sp, mask, ns, bias, y, mag, idx, vals;
    PyObject *A_obj, *dv_obj;
    Py_buffer A_view, dv_view;
    double *A, *dv;
    if (!PyArg_ParseTuple(args, "iiiiiy*y*y*y*y*y*y*y*y*y*y*w*w*w*w*OOp", &n, &B, &o, &K, &k, &h, &knots,
                          &tab, &span_t, &start, &coef, &sb, &sp, &mask, &ns, &bias, &y, &mag, &idx, &vals, &A_obj, &dv_obj,
                          &compute_basis))
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
    {
        const double *H = h.buf, *T = knots.buf, *C = coef.buf, *SB = sb.buf, *SP = sp.buf, *MK = mask.buf;
        const double *NS = ns.buf, *BI = bias.buf, *TAB = tab.buf, *ST = span_t.buf;
        const int *START = start.buf;
        double *Y = y.buf, *MAG = mag.buf, *V = vals.buf;
        int *I = idx.buf;
        Py_BEGIN_ALLOW_THREADS
        for (int b = 0; b < B; b++)
            for (int j = 0; j < o; j++) Y[(size_t)b * o + j] = BI[j];
        for (int e = 0; e < n * o; e++) MAG[e] = 0.0;
        for (int i = 0; i < n; i++) {
            const double *t = T + (size_t)i * K, *tb = TAB + (size_t)i * (K + 1) * (k + 1) * (k + 1);
            const double *st = ST + (size_t)i * (K + 1);
            const int *sti = START + (size_t)i * (K + 1);
            for (int b = 0; b < B; b++) {
                size_t ib = (size_t)i * B + b;
                double *v = V + ib * R;
                if (compute_basis) {
                    double x = H[(size_t)b * n + i];
                    double *d = dv ? dv + ib * R : NULL;
                    I[ib] = basis_at(t, K, k, tb, st, sti, x, v, d);
                    silu_at(x, v + k + 1, d ? d + k + 1 : NULL);
                }
                int j0 = I[ib];
                double s = v[k + 1];
                double *yb = Y + (size_t)b * o;
                for (int j = 0; j < o; j++) {
                    size_t e = (size_t)i * o + j;
                    double acc = 0.0;
                    const double *c = C + e * nb + j0;
                    for (int r = 0; r <= k; r++) acc += c[r] * v[r];
                    double a = MK[e] * (SB[e] * s + SP[e] * acc);
                    if (A) A[ib * o + j] = a;
                    MAG[e] += fabs(a);
                    yb[j] += NS[j] * a;
                }
            }
        }
        for (int e = 0; e < n * o; e++) MAG[e] /= B;
        Py_END_ALLOW_THREADS
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
 * when r is given, r[i, o] * sign(A[i, b, o]) (the penalty's share). The gradients of coef,
 * scale_sp, scale_base and bias go into the flat gradient at the given offsets (-1: not
 * trained); gw (n, o, nb) is scratch for d / d(coef * scale_sp * mask). gx (B, n), when given,
 * gets the gradient of the layer input. */
static PyObject *layer_backward(PyObject *self, PyObject *args) {
    int n, B, o, K, k;
    Py_ssize_t off_coef, off_sp, off_sb, off_bias;
    Py_buffer gout, ns, coef, sb, sp, mask, idx, vals, gw, gy, flat;
    PyObject *A_obj, *r_obj, *dv_obj, *gx_obj;
    Py_buffer A_view, r_view, dv_view, gx_view;
    double *A, *rr, *dv, *gx;
    if (!PyArg_ParseTuple(args, "iiiiiy*y*y*y*y*y*y*y*w*w*nnnnOOOOw*", &n, &B, &o, &K, &k, &gout, &ns,
                          &coef, &sb, &sp, &mask, &idx, &vals, &gw, &gy, &off_coef, &off_sp, &off_sb,
                          &off_bias, &A_obj, &r_obj, &dv_obj, &gx_obj, &flat))
        return NULL;
    PyObject *ret = NULL;
    int got_A = 0, got_r = 0, got_dv = 0, got_gx = 0;
    if (!get_opt(A_obj, &A_view, 0, &A)) goto done;
    got_A = A != NULL;
    if (!get_opt(r_obj, &r_view, 0, &rr)) goto done;
    got_r = rr != NULL;
    if (!get_opt(dv_obj, &dv_view, 0, &dv)) goto done;
    got_dv = dv != NULL;
    if (!get_opt(gx_obj, &gx_view, 1, &gx)) goto done;
    got_gx = gx != NULL;
    int nb = K - k - 1, R = k + 2;
    if (k < 1 || nb < 1) { PyErr_SetString(PyExc_ValueError, "_kernels: bad k or knots"); goto done; }
    if ((rr != NULL) != (A != NULL) || (gx != NULL && dv == NULL)) {
        PyErr_SetString(PyExc_ValueError, "_kernels: r needs A, gx needs dvals");
        goto done;
    }
    Py_ssize_t D = sizeof(double), E = (Py_ssize_t)n * o, P = flat.len / D;
    if (!check_len(&gout, (Py_ssize_t)B * o, D, "g_out") || !check_len(&ns, o, D, "node_scale") ||
        !check_len(&coef, E * nb, D, "coef") ||
        !check_len(&sb, E, D, "scale_base") || !check_len(&sp, E, D, "scale_sp") || !check_len(&mask, E, D, "mask") ||
        !check_len(&idx, (Py_ssize_t)n * B, sizeof(int), "idx") || !check_len(&vals, (Py_ssize_t)n * B * R, D, "vals") ||
        !check_len(&gw, E * nb, D, "gw") || !check_len(&gy, (Py_ssize_t)B * o, D, "gy") ||
        (got_A && !check_len(&A_view, (Py_ssize_t)n * B * o, D, "A")) || (got_r && !check_len(&r_view, E, D, "r")) ||
        (got_dv && !check_len(&dv_view, (Py_ssize_t)n * B * R, D, "dvals")) ||
        (got_gx && !check_len(&gx_view, (Py_ssize_t)B * n, D, "gx")))
        goto done;
    if ((off_coef >= 0 && off_coef + E * nb > P) || (off_sp >= 0 && off_sp + E > P) ||
        (off_sb >= 0 && off_sb + E > P) || (off_bias >= 0 && off_bias + o > P)) {
        PyErr_SetString(PyExc_ValueError, "_kernels: gradient offsets beyond the flat gradient");
        goto done;
    }
    {
        const double *GO = gout.buf, *NS = ns.buf, *C = coef.buf, *SB = sb.buf, *SP = sp.buf, *MK = mask.buf;
        const double *V = vals.buf;
        const int *I = idx.buf;
        double *GW = gw.buf, *GY = gy.buf, *F = flat.buf;
        Py_BEGIN_ALLOW_THREADS
        memset(GW, 0, sizeof(double) * E * nb);
        double *GSB = off_sb >= 0 ? F + off_sb : NULL;
        for (Py_ssize_t q = 0; q < (Py_ssize_t)B * o; q++) GY[q] = GO[q] * NS[q % o];
        if (off_bias >= 0)
            for (int j = 0; j < o; j++) {
                double acc = 0.0;
                for (int b = 0; b < B; b++) acc += GO[(size_t)b * o + j];
                F[off_bias + j] = acc;
            }
        for (int i = 0; i < n; i++) {
            for (int b = 0; b < B; b++) {
                size_t ib = (size_t)i * B + b;
                const double *v = V + ib * R;
                const double *d = dv ? dv + ib * R : NULL;
                int j0 = I[ib];
                const double *gyb = GY + (size_t)b * o;
                double gxa = 0.0;
                for (int j = 0; j < o; j++) {
                    size_t e = (size_t)i * o + j;
                    double g = gyb[j];
                    if (rr) {
                        double a = A[ib * o + j];
                        g += rr[e] * (a > 0.0 ? 1.0 : (a < 0.0 ? -1.0 : (a == 0.0 ? 0.0 : a)));
                    }
                    g *= MK[e];
                    if (GSB) GSB[e] += g * v[k + 1];
                    double *w = GW + e * nb + j0;
                    for (int r = 0; r <= k; r++) w[r] += g * v[r];
                    if (gx) {
                        const double *c = C + e * nb + j0;
                        double dacc = 0.0;
                        for (int r = 0; r <= k; r++) dacc += c[r] * d[r];
                        gxa += g * (SB[e] * d[k + 1] + SP[e] * dacc);
                    }
                }
                if (gx) gx[(size_t)b * n + i] = gxa;
            }
        }
        for (Py_ssize_t e = 0; e < E; e++) {
            const double *c = C + e * nb, *w = GW + e * nb;
            if (off_coef >= 0)
                for (int q = 0; q < nb; q++) F[off_coef + e * nb + q] = w[q] * SP[e];
            if (off_sp >= 0) {
                double acc = 0.0;
                for (int q = 0; q < nb; q++) acc += w[q] * c[q];
                F[off_sp + e] = acc;
            }
        }
        Py_END_ALLOW_THREADS
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&gout); PyBuffer_Release(&ns); PyBuffer_Release(&coef); PyBuffer_Release(&sb);
    PyBuffer_Release(&sp); PyBuffer_Release(&mask); PyBuffer_Release(&idx); PyBuffer_Release(&vals);
    PyBuffer_Release(&gw); PyBuffer_Release(&gy); PyBuffer_Release(&flat);
    if (got_A) PyBuffer_Release(&A_view);
    if (got_r) PyBuffer_Release(&r_view);
    if (got_dv) PyBuffer_Release(&dv_view);
    if (got_gx) PyBuffer_Release(&gx_view);
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
    {"two_loop", two_loop, METH_VARARGS, "The LBFGS two-loop recursion (see _kernels.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
