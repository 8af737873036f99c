/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
