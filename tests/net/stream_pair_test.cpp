// tests/net/stream_pair_test.cpp (filled in by the next commits)
#include <doctest/doctest.h>
