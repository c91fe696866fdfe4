/*
 * Every bound of ringwire in one place, with the relations between them checked
 * at compile time. Runtime-configurable limits have their hard ceilings here.
 */
#ifndef RW_LIMITS_H
#define RW_LIMITS_H

#include <limits.h>
#include <ringwire/frame.h>
#include <ringwire/ringwire.h> /* RW_LISTEN_MAX */

/* --max-frame: at most 1 GiB so header + payload always fits an int/ssize_t. */
#define RW_FRAME_MAX_BYTES_CEILING (1u << 30)
/* Reassembly buffers up to this capacity are kept after a frame completes; larger are freed. */
#define RW_REASM_KEEP_BYTES 1024u
/* Output queue block: replies are copied into these; gathered into iovecs. */
#define RW_OUTQ_BLOCK_BYTES (16u * 1024u)
/* Free output blocks a loop keeps cached (16 MiB at 16 KiB each). */
#define RW_BLOCK_POOL_CACHE_MAX 1024u
/* Connections with unflushed replies before the loop flushes them mid-turn: each holds an
 * output block until flushed, so this bounds the blocks one busy turn can take (kernel-notes/13).
 */
#define RW_DIRTY_FLUSH_MAX 64u
/* Free output blocks a loop keeps however idle it is; above this the cache is trimmed to what
 * the last RW_TRIM_INTERVAL_MS used (kernel-notes/16). */
#define RW_BLOCK_POOL_CACHE_FLOOR 64u
/* How often a loop gives unused memory back to the kernel: the block cache trimmed to its use,
 * then malloc_trim once at least RW_TRIM_MIN_BYTES were freed since the last time. */
#define RW_TRIM_INTERVAL_MS 1000u
#define RW_TRIM_MIN_BYTES   (1u << 20)
/* --max-memory: workers take budget in chunks of this size (no shared counter per charge). */
#define RW_MEM_CHUNK_BYTES (256u * 1024u)
/* At the budget, connections holding more than this are the ones closed, largest first;
 * smaller ones (new connections, small frames) are always served. */
#define RW_MEM_CLOSE_MIN_BYTES (64u * 1024u)
/* Connections closed for memory per worker per loop turn, at most (bounds the scan). */
#define RW_MEM_CLOSES_PER_TURN 16u
/* How often connections paused for memory are asked (TCP_INFO) whether their peer left. */
#define RW_MEM_PAUSED_CHECK_MS 250u
/* --max-memory floor when not 0: below it a few large frames could not be served at all. */
#define RW_MEM_MIN_BYTES (4u << 20)
/* Zero-copy replies: receive buffers one connection's queue may hold at once (more are copied),
 * and the free share of the buffer ring below which replies are copied (1/4). */
#define RW_ZC_HOLDS_PER_CONN 4u
#define RW_ZC_RING_LOW_DIV   4u
/* Smallest reply payload sent by reference (zc-replies); smaller ones are copied: below it no
 * saving was measurable, from 4 KiB up the copy it saves was (kernel-notes/18). */
#define RW_ZC_MIN_BYTES 4096u
/* iovecs per gathered send: epoll uses a stack array of this many. */
#define RW_SEND_IOV_MAX 64u
/* --max-conns ceiling. */
#define RW_CONNS_MAX (1u << 20)
/* A backend's own state per connection: the backend bytes of its slot (conn.h). */
#define RW_BACKEND_CONN_BYTES 32u
/* Timer wheel geometry. */
#define RW_WHEEL_SLOTS   512u
#define RW_WHEEL_TICK_MS 20u
/* The longest stretch of turns that skip the periodic work (loop.c: loop_quiet). */
#define RW_LOOP_QUIET_MAX_MS RW_WHEEL_TICK_MS
/* Back off this long before accepting again after EMFILE/ENFILE/ENOMEM. */
#define RW_ACCEPT_BACKOFF_MS 100u
/* epoll backend: one scratch buffer per loop, events per epoll_wait, accepts per readiness. */
#define RW_EPOLL_SCRATCH_BYTES (64u * 1024u)
#define RW_EPOLL_EVENTS_MAX    512u
#define RW_ACCEPT_BATCH_MAX    64u
/* uring backend: provided buffer ring defaults and bounds, CQEs reaped per turn. */
#define RW_URING_BUF_COUNT_DEFAULT 1024u
/* 16 KiB + 64: a frame of a 16 KiB payload and its header arrives in one buffer, so it is
 * parsed in place and can be replied to by reference; at 16 KiB exactly it spanned two and was
 * reassembled (16 KiB ping-pong: 1.22x epoll's server CPU a frame, 0.96-0.97x with the frame in
 * one buffer; kernel-notes/03). */
#define RW_URING_BUF_HEADROOM     64u
#define RW_URING_BUF_SIZE_DEFAULT (16u * 1024u + RW_URING_BUF_HEADROOM)
#define RW_URING_BUF_COUNT_MAX    32768u
#define RW_URING_BUF_SIZE_MAX     (1u << 20)
#define RW_URING_SQ_ENTRIES       1024u
#define RW_URING_CQE_BATCH        512u
/* min-wait: how long a turn that submitted sends waits past their completions for one more. */
#define RW_URING_MIN_WAIT_US 50u
/* lazy-reap: the longest a wait sleeps past lazy send completions with no other event (how stale
 * bytes_out and the output blocks they free may get on an idle connection). */
#define RW_URING_LAZY_REAP_MS 100u
/*
 * send-zc: smallest gathered send that goes out zero-copy (IORING_OP_SEND[MSG]_ZC). Below it the
 * page pinning and the notification CQE cost more than the copy they save: the kernel's own
 * MSG_ZEROCOPY guide puts the break-even around 10 KB per write on a real NIC. 16 KiB (one output
 * block, four pages) is just past it; on loopback the kernel copies anyway (kernel-notes/27).
 */
#define RW_SEND_ZC_MIN_BYTES (16u * 1024u)
/*
 * sqpoll: how long the kernel's SQ thread keeps polling an idle ring before it sleeps (and the
 * next submit must wake it with an io_uring_enter). Any load above ~100 submits/s keeps it
 * awake, so a busy server enters the kernel only to wait; it spins that long after every SQE,
 * so a server that re-arms its accept every 100 ms while out of descriptors burns 10% of a core
 * with 10 ms (50% with 50 ms: test_limits_out_of_fds_no_busy_loop saw it; kernel-notes/28).
 */
#define RW_URING_SQPOLL_IDLE_MS 10u
/*
 * Liveness sweep (kernel-notes/15): once per interval, walk at most VISITS
 * slots of the table from a round-robin cursor and ask the kernel
 * (TCP_INFO) about at most CHECKS connections quiet for QUIET_MS; one the
 * kernel already closed (reset) while no completion told us is closed.
 */
#define RW_SWEEP_INTERVAL_MS 1000u
#define RW_SWEEP_QUIET_MS    2000u
#define RW_SWEEP_VISITS_MAX  16384u
#define RW_SWEEP_CHECKS_MAX  1024u
/* How long a connection closed for a protocol error lingers for the peer's FIN. */
#define RW_LINGER_MS 2000u
/* --keepalive ceiling in seconds: the kernel's for TCP_KEEPIDLE and TCP_KEEPINTVL
 * (MAX_TCP_KEEPIDLE). */
#define RW_KEEPALIVE_MAX_S 32767u
/* The kernel's ceiling for TCP_KEEPCNT (MAX_TCP_KEEPCNT). */
#define RW_KEEPALIVE_PROBES_MAX 127u
/* --tcp-user-timeout ceiling: the kernel takes a non-negative int of milliseconds. */
#define RW_TCP_USER_TIMEOUT_MAX_MS ((unsigned)INT_MAX)
/* --listen addresses at most (RW_LISTEN_MAX) and their text: include/ringwire/ringwire.h. */
/*
 * Durations become deadlines as now_ms + timeout_ms (conn.c), so they need a
 * ceiling far below UINT64_MAX; 30 days is longer than any sane timeout.
 */
#define DURATION_MAX_MS (30ull * 24 * 60 * 60 * 1000)
/* --write-buffer ceiling: 1 GiB of queued replies per connection. */
#define WRITE_BUFFER_MAX_BYTES (1ull << 30)
/* --buf-size floor: smaller provided buffers would cost a CQE per few bytes. */
#define BUF_SIZE_MIN_BYTES 64u
/* --threads ceiling. */
#define RW_THREADS_MAX 256u
/*
 * RLIMIT_NOFILE the server asks for at start (kernel-notes/08): one descriptor
 * per connection (--max-conns), per worker its listener, eventfd and epoll or
 * io_uring descriptor plus slack (connections accepted beyond --max-conns are
 * held for an instant before they are closed), and slack for the process
 * (stdio, the io_uring probe, --stats-json).
 */
#define RW_NOFILE_PER_WORKER    3u
#define RW_NOFILE_WORKER_SLACK  16u
#define RW_NOFILE_PROCESS_SLACK 64u
#define RW_NOFILE_STDIO         3u

_Static_assert(RW_SEND_IOV_MAX <= IOV_MAX, "a gathered send must fit IOV_MAX");
_Static_assert(RW_OUTQ_BLOCK_BYTES > RW_FRAMING_HEADER_MAX, "a header fits one block");
_Static_assert((RW_WHEEL_SLOTS & (RW_WHEEL_SLOTS - 1)) == 0, "wheel slots: power of two");
_Static_assert((RW_URING_BUF_COUNT_MAX & (RW_URING_BUF_COUNT_MAX - 1)) == 0,
               "buffer ring entries: power of two");
_Static_assert(RW_URING_BUF_COUNT_MAX <= 32768u, "kernel limit on buffer ring entries");
_Static_assert(RW_URING_BUF_COUNT_DEFAULT <= RW_URING_BUF_COUNT_MAX, "default within bound");
_Static_assert(RW_FRAME_MAX_BYTES_CEILING + RW_FRAMING_HEADER_MAX <= INT_MAX,
               "frame sizes fit an int");
_Static_assert(RW_REASM_KEEP_BYTES >= RW_FRAME_HEADER_BYTES, "a header fits a kept buffer");
_Static_assert(RW_NOFILE_PROCESS_SLACK >= RW_NOFILE_STDIO, "the process slack covers stdio");
_Static_assert(RW_BLOCK_POOL_CACHE_FLOOR <= RW_BLOCK_POOL_CACHE_MAX, "cache floor within cap");
_Static_assert(RW_MEM_CLOSE_MIN_BYTES > RW_REASM_KEEP_BYTES + RW_OUTQ_BLOCK_BYTES,
               "a connection with one kept buffer and one block is never closed for memory");
_Static_assert(RW_MEM_MIN_BYTES >= 8 * RW_MEM_CHUNK_BYTES, "budget spans many chunks");

#endif
