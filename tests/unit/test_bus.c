/* The address bus (vmm/bus.c): a device answers only the range it
 * registered, at its offset; overlapping ranges are refused; an address
 * nobody registered is -ENOENT, for the exit handler to say what empty
 * space reads as. */
#include "vmm/bus.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

struct dev {
	uint64_t off;
	uint32_t len;
	bool write;
	unsigned calls;
};

static void dev_io(void *opaque, uint64_t off, void *data, uint32_t len,
		   bool write)
{
	struct dev *d = opaque;

	d->off = off;
	d->len = len;
	d->write = write;
	d->calls++;
	if (!write)
		memset(data, 0x5a, len);
}

static void test_lookup_by_range(void **state)
{
	struct bus b = { .n = 0 };
	struct dev a = { 0 }, c = { 0 };
	uint8_t buf[4] = { 0 };

	(void)state;
	assert_int_equal(bus_register(&b, 0x3f8, 8, dev_io, &a), 0);
	assert_int_equal(bus_register(&b, 0xd0000000ULL, 0x1000, dev_io, &c),
			 0);
	assert_int_equal(bus_access(&b, 0x3fd, buf, 1, false), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.off, 5);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(bus_access(&b, 0xd0000070ULL, buf, 4, true), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.off, 0x70);
	assert_true(c.write);
	/* Just past each end: nobody. */
	assert_int_equal(bus_access(&b, 0x400, buf, 1, false), -ENOENT);
	assert_int_equal(bus_access(&b, 0x3f7, buf, 1, false), -ENOENT);
	assert_int_equal(bus_access(&b, 0xd0001000ULL, buf, 4, false),
			 -ENOENT);
	assert_int_equal(a.calls + c.calls, 2);
}

static void test_register_refuses(void **state)
{
	struct bus b = { .n = 0 };
	struct dev d = { 0 };

	(void)state;
	assert_int_equal(bus_register(&b, 0x60, 1, dev_io, &d), 0);
	assert_int_equal(bus_register(&b, 0x64, 1, dev_io, &d), 0);
	assert_int_equal(bus_register(&b, 0x5f, 2, dev_io, &d), -EEXIST);
	assert_int_equal(bus_register(&b, 0x61, 3, dev_io, &d), 0);
	assert_int_equal(bus_register(&b, 0x100, 0, dev_io, &d), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, dev_io, &d),
			 -EINVAL);
	for (uint64_t a = 0x1000; b.n < BUS_MAX_RANGES; a += 0x10)
		assert_int_equal(bus_register(&b, a, 0x10, dev_io, &d), 0);
	assert_int_equal(bus_register(&b, 0x9000, 1, dev_io, &d), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_by_range),
		cmocka_unit_test(test_register_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
