// tests/net/buffer_test.cpp (filled in by the next commits)
#include <doctest/doctest.h>
