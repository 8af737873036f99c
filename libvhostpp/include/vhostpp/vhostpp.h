/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file vhostpp.h
 * \brief Everything a device author needs: include this one header.
 */
#pragma once

#include "vhostpp/device.h"
#include "vhostpp/fd.h"
#include "vhostpp/log.h"
#include "vhostpp/server.h"
#include "vhostpp/virtqueue.h"
