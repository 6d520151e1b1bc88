// The unit-test runner: doctest supplies main() and the command-line options.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
