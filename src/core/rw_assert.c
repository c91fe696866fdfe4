/* The one place an assertion failure is reported: print and abort. */
#include "rw_assert.h"

#include <stdio.h>
#include <stdlib.h>

void rw__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ringwire: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
