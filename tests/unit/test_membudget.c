/*
 * Unit tests for the process-wide memory budget (src/core/membudget.h): a
 * worker's charges reach the shared counter only in whole chunks, so the
 * shared total over-states use by less than two chunks a worker; uncharging
 * gives spare chunks back; the excess and the resume mark follow the shared
 * total of every worker; a limit of 0 is no limit.
 */
#include <check.h>
#include <stdint.h>

#include "membudget.h"
#include "rw_limits.h"

#define CHUNK ((uint64_t)RW_MEM_CHUNK_BYTES)

START_TEST(test_membudget_charges_in_chunks)
{
    struct rw_mem_budget b;
    struct rw_mem_account a;
    rw__mem_budget_init(&b, 100 * CHUNK);
    rw__mem_account_init(&a, &b);
    rw__mem_charge(&a, 1);
    ck_assert_uint_eq(rw__mem_reserved(&a), CHUNK);
    rw__mem_charge(&a, CHUNK - 1);
    ck_assert_uint_eq(rw__mem_reserved(&a), CHUNK); /* still within the first chunk */
    rw__mem_charge(&a, 1);
    ck_assert_uint_eq(rw__mem_reserved(&a), 2 * CHUNK);
    rw__mem_charge(&a, 10 * CHUNK); /* a large charge takes every chunk it needs at once */
    ck_assert_uint_eq(a.used_bytes, 11 * CHUNK + 1);
    ck_assert_uint_eq(rw__mem_reserved(&a), 12 * CHUNK);
    ck_assert_uint_ge(a.reserved_bytes, a.used_bytes);

    /* Uncharging keeps at most a chunk or two spare and gives the rest back. */
    rw__mem_uncharge(&a, 11 * CHUNK);
    ck_assert_uint_eq(a.used_bytes, 1);
    ck_assert_uint_le(rw__mem_reserved(&a), 2 * CHUNK);
    ck_assert_uint_ge(rw__mem_reserved(&a), a.used_bytes);
    ck_assert_uint_eq(rw__mem_take_freed(&a), 11 * CHUNK);
    ck_assert_uint_eq(rw__mem_take_freed(&a), 0);
    rw__mem_uncharge(&a, 1);
    rw__mem_account_destroy(&a);
    ck_assert_uint_eq(rw__mem_reserved(&a), 0);
}
END_TEST

START_TEST(test_membudget_excess_is_process_wide)
{
    struct rw_mem_budget b;
    struct rw_mem_account w0, w1;
    rw__mem_budget_init(&b, 16 * CHUNK);
    rw__mem_account_init(&w0, &b);
    rw__mem_account_init(&w1, &b);
    rw__mem_charge(&w0, 10 * CHUNK);
    ck_assert_uint_eq(rw__mem_excess(&w1), 0);
    ck_assert(rw__mem_has_room(&w1)); /* 10 of 16 chunks: below the 7/8 resume mark */
    rw__mem_charge(&w0, 5 * CHUNK);
    ck_assert_uint_eq(rw__mem_excess(&w1), 0);
    ck_assert(!rw__mem_has_room(&w1)); /* 15 of 16: within the budget, above the mark */
    rw__mem_uncharge(&w0, 15 * CHUNK);
    ck_assert(rw__mem_has_room(&w1));
    rw__mem_charge(&w0, 9 * CHUNK);
    rw__mem_charge(&w1, 9 * CHUNK);
    /* Worker 1 sees the excess worker 0 helped cause. */
    ck_assert_uint_eq(rw__mem_excess(&w1), 2 * CHUNK);
    ck_assert_uint_eq(rw__mem_excess(&w0), 2 * CHUNK);
    ck_assert(!rw__mem_has_room(&w0));
    rw__mem_uncharge(&w1, 9 * CHUNK);
    ck_assert_uint_eq(rw__mem_excess(&w0), 0);
    ck_assert(rw__mem_has_room(&w0));
    rw__mem_uncharge(&w0, 9 * CHUNK);
    rw__mem_account_destroy(&w0);
    rw__mem_account_destroy(&w1);
    ck_assert_uint_eq(b.reserved_bytes, 0);

    /* 0 is no limit: never an excess, always room; charges are still counted. */
    struct rw_mem_budget none;
    struct rw_mem_account a;
    rw__mem_budget_init(&none, 0);
    rw__mem_account_init(&a, &none);
    rw__mem_charge(&a, 1000 * CHUNK);
    ck_assert_uint_eq(rw__mem_excess(&a), 0);
    ck_assert(rw__mem_has_room(&a));
    rw__mem_uncharge(&a, 1000 * CHUNK);
    rw__mem_account_destroy(&a);
    /* A NULL account (unit tests of other modules) is ignored. */
    rw__mem_charge(NULL, 5);
    rw__mem_uncharge(NULL, 5);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("membudget");
    TCase *tc = tcase_create("test_membudget_charges_in_chunks");
    tcase_add_test(tc, test_membudget_charges_in_chunks);
    suite_add_tcase(s, tc);
    tc = tcase_create("test_membudget_excess_is_process_wide");
    tcase_add_test(tc, test_membudget_excess_is_process_wide);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
