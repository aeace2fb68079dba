/*
 * unit.h - shared scaffolding of the Check unit tests: each tests/unit/test_<module>.c defines
 * `Suite *make_suite(void)` and uses UNIT_MAIN to get a main() that runs it and exits non-zero
 * on any failure.
 */
#ifndef MTASTS_UNIT_H
#define MTASTS_UNIT_H

#include <check.h>
#include <stdlib.h>

#define UNIT_MAIN(make_suite_fn)                                        \
	int main(void)                                                      \
	{                                                                   \
		SRunner *runner = srunner_create(make_suite_fn());              \
		srunner_run_all(runner, CK_NORMAL);                             \
		int failed = srunner_ntests_failed(runner);                     \
		srunner_free(runner);                                           \
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;                    \
	}

#endif
