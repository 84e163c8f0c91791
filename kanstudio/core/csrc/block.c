/* The autograd layers' dense feature block (compiled_block.py, spline.py), float32 or float64. */
#include "kernels.h"

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

/* Runs fn over rows 0..N-1 of jobs[0]'s block, split into nt equal ranges, GIL released. */
static void run_rows(void *(*fn)(void *), block_job *jobs, int nt, Py_ssize_t N) {
    if (nt < 1 || nt > MAXTHREADS) nt = 1;
    for (int t = 0; t < nt; t++) {
        if (t > 0) jobs[t] = jobs[0];
        jobs[t].q0 = N * t / nt;
        jobs[t].q1 = N * (t + 1) / nt;
    }
    Py_BEGIN_ALLOW_THREADS
    run_jobs(fn, jobs, sizeof(block_job), nt);
    Py_END_ALLOW_THREADS
}

/* assemble(N, width, k, silu, itemsize, vals (k+1+silu, N), c0 (N,) int64, F (N, width), nthreads) */
PyObject *assemble(PyObject *self, PyObject *args) {
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
    {
        block_job jobs[MAXTHREADS];
        jobs[0] = (block_job){.N = N, .width = width, .k = k, .silu = silu, .itemsize = itemsize,
                              .c0 = c0.buf, .vals = vals.buf, .F = F.buf};
        run_rows(assemble_run, jobs, nthreads, N);
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&vals); PyBuffer_Release(&c0); PyBuffer_Release(&F);
    return ret;
}

/* block_grad(N, width, k, silu, itemsize, n, sb, sn, grad (flat, rows at b*sb + i*sn), c0, dL, gx (N,), nthreads) */
PyObject *block_grad(PyObject *self, PyObject *args) {
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
    {
        block_job jobs[MAXTHREADS];
        jobs[0] = (block_job){.N = N, .width = width, .n = n, .sb = sb, .sn = sn, .k = k, .silu = silu,
                              .itemsize = itemsize, .c0 = c0.buf, .vals = dL.buf, .F = grad.buf, .gx = gx.buf};
        run_rows(grad_run, jobs, nthreads, N);
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
PyObject *uniform_local(PyObject *self, PyObject *args) {
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
