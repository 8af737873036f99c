/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file status_text.h
 * \brief STATUS and WATCH for people: the text vhostctl prints.
 */
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace vhost_sound::control {

/**
 * \brief STATUS's JSON as a readable table, in the spirit of
 * `cat /dev/sndstat` and pw-top: a line for the device, a row per stream,
 * then each stream's feeder chain.
 * \throws std::runtime_error when \a status is not STATUS JSON of schema kSchema
 */
std::string format_status_table(const nlohmann::json &status);

/**
 * \brief STATUS's "mixer" object (CONTROLS' reply) as a line per control.
 * \throws std::runtime_error when \a mixer is not that object
 */
std::string format_controls_table(const nlohmann::json &mixer);
/**
 * \brief One WATCH event as one line: UTC timestamp, then what happened.
 * \throws std::runtime_error when \a event is not an event object
 */
std::string format_event(const nlohmann::json &event);

} // namespace vhost_sound::control
