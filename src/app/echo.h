/* The echo application of the ringwire program: every frame answered with an identical one. */
#ifndef RW_APP_ECHO_H
#define RW_APP_ECHO_H

#include <ringwire/ringwire.h>

extern const struct rw_handler rw_echo_handler;

#endif
