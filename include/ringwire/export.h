/*
 * RW_API marks the functions and data of the public headers that libringwire
 * exports. The library is compiled with -fvisibility=hidden, so everything
 * else (the rw__ internals, static helpers' neighbours) stays out of the
 * shared library's dynamic symbol table: the ABI is exactly what the headers
 * declare. For a program that includes the headers the mark changes nothing.
 */
#ifndef RINGWIRE_EXPORT_H
#define RINGWIRE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define RW_API __attribute__((visibility("default")))
#else
#define RW_API
#endif

#endif
