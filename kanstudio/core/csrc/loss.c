/* The objective's loss and penalty (objective.py), float64. */
#include "kernels.h"

/* ---- loss and penalty -------------------------------------------------------------------- */

/* mse of pred * out_scale + out_shift against target (B, o); writes d mse / d pred into g. */
PyObject *mse_grad(PyObject *self, PyObject *args) {
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
PyObject *l1_entropy(PyObject *self, PyObject *args) {
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
