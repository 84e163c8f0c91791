/* Vector helpers shared by the loop headers (layer_loops.h), included inside
 * each of their copies: the includer has typedef'd vec (VW REALs) and ivec (the same-size
 * integers), defined REAL and REAL_BITS (32 or 64), and #defined vexp, vabs and vsign to its
 * copy's names. */

/* exp(x), VW lanes at once, within ~1 ulp of libm's: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in
 * two parts, so n ln2 is exact), a Taylor polynomial for exp(r) whose first omitted term is
 * below the type's rounding (degree 13 in double, 7 in float), times 2^n built in the exponent
 * bits. x is clamped to where 2^n is a normal number: exp of less than -708 (float: -87) comes
 * out as about the smallest normal instead of smaller, of more than 709 (88) as about the
 * largest instead of inf -- in silu both give the same result to the type's precision. NaN
 * stays NaN. */
static inline vec vexp(vec x) {
#if REAL_BITS == 32
    const vec lo = (vec){0} - 87.0f, hi = (vec){0} + 88.0f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    static const float coef[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
    const int mant = 23, bias = 127;
#else
    const vec lo = (vec){0} - 708.0, hi = (vec){0} + 709.0;
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
    const double ln2_hi = 0.693145751953125, ln2_lo = 1.4286068203094172321e-06;
    static const double coef[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                  1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                                  1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    const int mant = 52, bias = 1023;
#endif
    ivec below = x < lo, above = x > hi;
    x = (vec)(((ivec)x & ~below) | ((ivec)lo & below));
    x = (vec)(((ivec)x & ~above) | ((ivec)hi & above));
    vec t = x * (REAL)1.4426950408889634 + shifter, n = t - shifter;
    ivec ni = (ivec)t - (ivec)((vec){0} + shifter); /* n as an integer: the low bits of t */
    vec r = (x - n * ln2_hi) - n * ln2_lo;
    vec p = (vec){0} + coef[0];
    for (size_t q = 1; q < sizeof coef / sizeof coef[0]; q++) p = p * r + coef[q];
    ivec bits = (ni + bias) << mant;
    return p * (vec)bits;
}

/* |a| and sign(a) lane by lane, without branches: the signs of a layer's activations are close
 * to random, and a mispredicted branch per (sample, edge) cost more than the rest of the
 * penalty. (sign of NaN is 0; the loss is NaN then anyway, and training rolls back.) */
static inline vec vabs(vec a) {
    const ivec sign = (ivec)((vec){0} * (REAL)-1); /* -0.0: the sign bit alone */
    return (vec)((ivec)a & ~sign);
}
static inline vec vsign(vec a) {
    const ivec one = (ivec)((vec){0} + 1);
    return (vec)(one & (a > 0)) - (vec)(one & (a < 0));
}
