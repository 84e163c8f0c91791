/* kanstudio.core._kernels: compiled inner loops, built by setup.py (optional).
 *   layer.c  -- one layer of the hand-differentiated training objective (objective.py), float64;
 *               its per-sample loops in layer_loops.h, built per instruction set
 *   pool.c   -- the threads that run them
 *   loss.c   -- its loss and L1 + entropy penalty
 *
 * What each kernel buys, and the ones removed because they bought less than 1.5x in any figure a
 * user sees: docs/kernels.md.
 *
 * Why C: a [2,5,1] KAN on 1000 rows is ~40 000 multiply-adds per evaluation, and numpy spends
 * more on dispatching its ~50 calls than on the arithmetic. Here each layer is one pass over
 * (input, sample, output) that touches only the k + 1 nonzero basis functions of each sample.
 * Optional: objective.py falls back to numpy when this module is not built, and the tests check
 * both against autograd.
 *
 * The GIL is released while computing, so a UI thread stays responsive during training.
 */
#include "kernels.h"

static PyMethodDef methods[] = {
    {"layer_forward", layer_forward, METH_VARARGS, "One plain-spline KAN layer forward (see csrc/layer.c)."},
    {"layer_backward", layer_backward, METH_VARARGS, "One plain-spline KAN layer backward (see csrc/layer.c)."},
    {"isa", layer_isa, METH_VARARGS, "The instruction set of the layer loops; isa(name) switches (see csrc/layer.c)."},
    {"mse_grad", mse_grad, METH_VARARGS, "Mean squared error and its gradient (see csrc/loss.c)."},
    {"l1_entropy", l1_entropy, METH_VARARGS, "One layer's L1 + entropy penalty (see csrc/loss.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
