// tests/net/rate_limit_test.cpp (filled in by the next commits)
#include <doctest/doctest.h>
