/* The k + 1 nonzero B-splines at one x, shared by the loop headers (layer_loops.h) and
 * included inside each of their copies: the includer has defined REAL,
 * typedef'd v4 (4 REALs), defined INLINE and #defined span_basis to its copy's name.
 *
 * The basis comes as spline.py's per-span polynomial tables (KnotTables; the torch layers and
 * the numpy objective use the same): span s = number of knots <= x (0 and K are outside the
 * knots, where the tables are zero; NaN lands in 0), u = x - span_t[s] (0 outside, so an
 * infinite x gives zeros rather than 0 * inf), and the values are sum_e tab[s][e][r] u^e for
 * the functions start[s] + r -- every index valid. For cubic splines (k = 3) the four run as
 * one 4-wide Horner. Returns start[s]; v and (unless NULL) d get the k + 1 values and
 * derivatives. */
INLINE int span_basis(const REAL *t, int K, int k, const REAL *tab, const REAL *span_t, const int *start, REAL x,
                      REAL *v, REAL *d) {
    int s = 0;
    for (int j = 0; j < K; j++) s += x >= t[j];
    const int R1 = k + 1;
    const REAL *c = tab + (size_t)s * R1 * R1;
    REAL u = (s == 0 || s == K) ? 0 : x - span_t[s];
    if (R1 == 4) {
        v4 p, dp = {0}, ce;
        memcpy(&p, c + 3 * 4, sizeof p);
        for (int e = 2; e >= 0; e--) {
            memcpy(&ce, c + e * 4, sizeof ce);
            dp = dp * u + p;
            p = p * u + ce;
        }
        memcpy(v, &p, sizeof p);
        if (d) memcpy(d, &dp, sizeof dp);
        return start[s];
    }
    for (int r = 0; r < R1; r++) {
        REAL p = c[k * R1 + r], dp = 0;
        for (int e = k - 1; e >= 0; e--) {
            dp = dp * u + p;
            p = p * u + c[e * R1 + r];
        }
        v[r] = p;
        if (d) d[r] = dp;
    }
    return start[s];
}
