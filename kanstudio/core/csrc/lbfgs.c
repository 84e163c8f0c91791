/* LBFGS (lbfgs.py), float64. */
#include "kernels.h"

/* ---- LBFGS two-loop recursion ---------------------------------------------------------- */

/* d = -H g for the curvature pairs (s_i, y_i), i = 0..m-1 oldest first, stored as rows of
 * S and Y (m, p), with ro_i = 1 / (y_i . s_i) and the initial scaling H_diag; torch's
 * algorithm, the same operations in the same order. Writes d (p,); al is scratch (m,). */
PyObject *two_loop(PyObject *self, PyObject *args) {
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
