/* zipf.c — rejection-inversion sampling of a bounded Zipf law.
 *
 * H is an antiderivative of h(x) = x^-s; a uniform u between H(n + 0.5)
 * and H(1.5) - 1 is inverted to x, rounded to the rank k, and accepted when
 * it falls under the bar of k. helper1/helper2 keep log1p(x)/x and
 * expm1(x)/x accurate near 0, which is what makes s = 1 (and s near 1) work
 * without a special case.
 */
#include "sim/zipf.h"

#include <errno.h>
#include <math.h>

static double helper1(double x) /* log1p(x) / x */
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double helper2(double x) /* expm1(x) / x */
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
}

static double h_integral(const op_zipf_t *z, double x)
{
    double lx = log(x);
    return helper2((1.0 - z->s) * lx) * lx;
}

static double h(const op_zipf_t *z, double x)
{
    return exp(-z->s * log(x));
}

static double h_integral_inverse(const op_zipf_t *z, double x)
{
    double t = x * (1.0 - z->s);
    if (t < -1.0)
        t = -1.0; /* rounding can push it just past the pole */
    return exp(helper1(t) * x);
}

int op_zipf_init(op_zipf_t *z, uint64_t n, double s)
{
    if (n < 1 || !(s >= 0.0) || !isfinite(s))
        return -EINVAL;
    z->n = n;
    z->s = s;
    z->h_x1 = h_integral(z, 1.5) - 1.0;
    z->h_n = h_integral(z, (double)n + 0.5);
    z->accept_band = 2.0 - h_integral_inverse(z, h_integral(z, 2.5) - h(z, 2.0));
    return 0;
}

uint64_t op_zipf_draw(const op_zipf_t *z, op_rng_t *r)
{
    for (;;) {
        double u = z->h_n + op_rng_double(r) * (z->h_x1 - z->h_n);
        double x = h_integral_inverse(z, u);
        double kf = floor(x + 0.5);
        if (kf < 1.0)
            kf = 1.0;
        else if (kf > (double)z->n)
            kf = (double)z->n;
        if (kf - x <= z->accept_band || u >= h_integral(z, kf + 0.5) - h(z, kf))
            return (uint64_t)kf;
    }
}
