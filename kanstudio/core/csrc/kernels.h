/* Shared by the compiled kernels of kanstudio.core._kernels (see module.c for the index):
 * argument checks on Python buffers and the fork-join of pool.c. */
#ifndef KANSTUDIO_KERNELS_H
#define KANSTUDIO_KERNELS_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAXTHREADS 8

/* layer.c builds an AVX2 + FMA copy of their loops (chosen at run time) where
 * GCC targets x86-64 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HAVE_AVX2_LOOPS 1
#endif

/* ---- argument checking ---------------------------------------------------------------- */

static inline int check_len(Py_buffer *b, Py_ssize_t count, Py_ssize_t item, const char *name) {
    if (b->len != count * item) {
        PyErr_Format(PyExc_ValueError, "_kernels: %s has %zd bytes, expected %zd", name, b->len,
                     count * item);
        return 0;
    }
    return 1;
}

/* An optional buffer: None gives buf == NULL. */
static inline int get_opt(PyObject *obj, Py_buffer *view, int writable, double **out) {
    *out = NULL;
    if (obj == Py_None) return 1;
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return 0;
    *out = (double *)view->buf;
    return 1;
}

/* Runs fn on jobs[0..nt-1] (each `size` bytes), jobs[0] on the calling thread, the others on
 * the pool's workers (pool.c); nt <= 1 runs on the caller only. Call without the GIL. */
void run_jobs(void *(*fn)(void *), void *jobs, size_t size, int nt);
/* The same for njobs jobs on nt threads (the caller and nt - 1 workers), claimed one by one:
 * with more jobs than threads, a worker that starts late (its core busy with another
 * process's or library's threads) leaves its share to the others instead of holding them up. */
void run_jobs_on(void *(*fn)(void *), void *jobs, size_t size, int njobs, int nt);

/* the module's functions, one file per concept */
PyObject *layer_forward(PyObject *self, PyObject *args);  /* layer.c */
PyObject *layer_backward(PyObject *self, PyObject *args); /* layer.c */
PyObject *layer_isa(PyObject *self, PyObject *args);      /* layer.c */
int loops_are_avx2(void);                                 /* layer.c: isa() chose avx2 */
PyObject *mse_grad(PyObject *self, PyObject *args);       /* loss.c */
PyObject *l1_entropy(PyObject *self, PyObject *args);     /* loss.c */

#endif
