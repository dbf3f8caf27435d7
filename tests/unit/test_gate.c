/* The adaptive handshake gate: admission order, limits, narrowing on drops, widening on success. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gate.h"

typedef struct waiter {
    smx_gate_waiter w;
    int admitted;
    int order;
} waiter;

static int admit_counter;

static void on_admit(smx_gate_waiter *w)
{
    waiter *x = (waiter *)w;   /* w is the first member */
    x->admitted = 1;
    x->order = ++admit_counter;
}

static void test_admits_up_to_limit_then_fifo(void **state)
{
    smx_gates *g = smx_gates_new(3, 100);
    smx_gate *gate = smx_gates_get(g, "tcp:[127.0.0.1]:22");
    waiter w[6] = {0};
    admit_counter = 0;
    for (int i = 0; i < 6; i++)
        smx_gate_acquire(gate, &w[i].w, on_admit);
    for (int i = 0; i < 3; i++)
        assert_true(w[i].admitted);
    for (int i = 3; i < 6; i++)
        assert_false(w[i].admitted);
    assert_int_equal(smx_gate_inflight(gate), 3);
    smx_gate_release(gate, SMX_GATE_NEUTRAL);
    assert_true(w[3].admitted);
    assert_false(w[4].admitted);
    assert_int_equal(w[3].order, 4);
    smx_gates_free(g);
}

static void test_keys_are_independent(void **state)
{
    smx_gates *g = smx_gates_new(1, 10);
    smx_gate *a = smx_gates_get(g, "a");
    smx_gate *b = smx_gates_get(g, "b");
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(a, smx_gates_get(g, "a"));
    waiter wa = {0}, wb = {0};
    smx_gate_acquire(a, &wa.w, on_admit);
    smx_gate_acquire(b, &wb.w, on_admit);
    assert_true(wa.admitted && wb.admitted);
    smx_gates_free(g);
}

static void test_success_widens_up_to_max(void **state)
{
    smx_gates *g = smx_gates_new(2, 5);
    smx_gate *gate = smx_gates_get(g, "k");
    waiter w = {0};
    for (int i = 0; i < 20; i++) {
        smx_gate_acquire(gate, &w.w, on_admit);
        smx_gate_release(gate, SMX_GATE_SUCCESS);
    }
    assert_int_equal(smx_gate_limit(gate), 5);
    smx_gates_free(g);
}

static void test_drop_narrows_once_per_burst(void **state)
{
    smx_gates *g = smx_gates_new(20, 100);
    smx_gate *gate = smx_gates_get(g, "k");
    waiter w[20] = {0};
    for (int i = 0; i < 20; i++)
        smx_gate_acquire(gate, &w[i].w, on_admit);
    smx_gate_release(gate, SMX_GATE_DROPPED);
    int after_first = smx_gate_limit(gate);
    assert_true(after_first < 20);
    assert_true(after_first >= 2);
    /* the rest of the same burst does not keep halving */
    for (int i = 0; i < 5; i++)
        smx_gate_release(gate, SMX_GATE_DROPPED);
    assert_int_equal(smx_gate_limit(gate), after_first);
    /* a success ends the burst; the next drop narrows again */
    smx_gate_release(gate, SMX_GATE_SUCCESS);
    int widened = smx_gate_limit(gate);
    smx_gate_release(gate, SMX_GATE_DROPPED);
    assert_true(smx_gate_limit(gate) < widened);
    assert_true(smx_gate_limit(gate) >= 2);
    smx_gates_free(g);
}

static void test_cancel_removes_waiter(void **state)
{
    smx_gates *g = smx_gates_new(1, 10);
    smx_gate *gate = smx_gates_get(g, "k");
    waiter a = {0}, b = {0}, c = {0};
    smx_gate_acquire(gate, &a.w, on_admit);
    smx_gate_acquire(gate, &b.w, on_admit);
    smx_gate_acquire(gate, &c.w, on_admit);
    smx_gate_cancel(&b.w);
    smx_gate_release(gate, SMX_GATE_NEUTRAL);
    assert_false(b.admitted);
    assert_true(c.admitted);
    smx_gates_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admits_up_to_limit_then_fifo),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_success_widens_up_to_max),
        cmocka_unit_test(test_drop_narrows_once_per_burst),
        cmocka_unit_test(test_cancel_removes_waiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
