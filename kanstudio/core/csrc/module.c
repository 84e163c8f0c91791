/* kanstudio.core._kernels: compiled inner loops, built by setup.py (optional).
 *   layer.c  -- one layer of the hand-differentiated training objective (objective.py), float64;
 *               its per-sample loops in layer_loops.h, built per instruction set
 *   edge_sum.c -- the autograd layers' sum over edges, forward and backward, float32 or float64,
 *               without the dense feature block; its chunked loops in edge_sum_loops.h
 *   pool.c   -- the threads that run them
 *   loss.c   -- its loss and L1 + entropy penalty
 *   block.c  -- the autograd layers' dense feature block, its gradient, the uniform-knot basis
 *   lbfgs.c  -- the LBFGS two-loop recursion (lbfgs.py)
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
    {"edge_sum_forward", edge_sum_forward, METH_VARARGS, "An autograd layer's sum over edges (see csrc/edge_sum.c)."},
    {"edge_sum_backward", edge_sum_backward, METH_VARARGS, "Its weight and input gradients (see csrc/edge_sum.c)."},
    {"mse_grad", mse_grad, METH_VARARGS, "Mean squared error and its gradient (see csrc/loss.c)."},
    {"l1_entropy", l1_entropy, METH_VARARGS, "One layer's L1 + entropy penalty (see csrc/loss.c)."},
    {"assemble", assemble, METH_VARARGS, "Dense feature block from local values (see csrc/block.c)."},
    {"block_grad", block_grad, METH_VARARGS, "Input gradient through a dense feature block (see csrc/block.c)."},
    {"uniform_local", uniform_local, METH_VARARGS, "Local basis values on uniform knots (see csrc/block.c)."},
    {"two_loop", two_loop, METH_VARARGS, "The LBFGS two-loop recursion (see csrc/lbfgs.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
